package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSetup;
import io.tpmphone.tls.MalformedExtensionException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The SDP we offer and answer (RFC 4566, RFC 4568, RFC 5763): one audio stream with PCMU and PCMA, protected either by
 * SDES ({@code RTP/SAVP}, one crypto attribute per key) or by DTLS-SRTP ({@code UDP/TLS/RTP/SAVP} with
 * {@code a=fingerprint}, {@code a=setup} and {@code a=rtcp-mux}: {@link #dtls()} present) — and a strict reader for
 * the peer's: one audio m-line, its connection address and port, its payload types, its crypto attributes, and its
 * DTLS attributes when its protocol is DTLS-SRTP. Anything else in the peer's SDP is ignored; a missing or malformed
 * essential line is an {@link IllegalArgumentException} naming it (never echoing more than a few characters of the
 * peer's text). Immutable.
 */
public record Sdp(String address, int port, List<Integer> payloadTypes, List<SdesCrypto> cryptos,
                  String direction, Optional<DtlsAttributes> dtls, java.util.Map<Integer, String> rtpmap) {
    /** The DTLS-SRTP media protocol (RFC 5764 §8). */
    public static final String DTLS_PROTOCOL = "UDP/TLS/RTP/SAVP";
    /**
     * More fingerprints than this in one SDP (per level, counting the ones we skip) are refused: RFC 8122 allows
     * several; nobody needs many.
     */
    public static final int MAX_FINGERPRINTS = 4;

    /**
     * A DTLS-SRTP stream's attributes: the certificate fingerprints (any may match; RFC 8122 §5), who starts the
     * handshake, and whether RTCP shares the RTP port (we always ask for it, and need it: one DTLS association per
     * call).
     */
    public record DtlsAttributes(List<DtlsFingerprint> fingerprints, DtlsSetup setup, boolean rtcpMux) {
        public DtlsAttributes {
            fingerprints = List.copyOf(fingerprints);
            Objects.requireNonNull(setup, "setup");
            if (fingerprints.isEmpty() || fingerprints.size() > MAX_FINGERPRINTS) {
                throw new IllegalArgumentException("a DTLS-SRTP stream has 1.." + MAX_FINGERPRINTS + " fingerprints");
            }
        }

        /** Ours: one SHA-256 fingerprint, RTCP multiplexed. */
        public static DtlsAttributes of(DtlsFingerprint fingerprint, DtlsSetup setup) {
            return new DtlsAttributes(List.of(fingerprint), setup, true);
        }
    }
    /** PCMU/8000 and PCMA/8000. */
    public static final List<Integer> AUDIO_PAYLOADS = List.of(0, 8);
    /** Our payload type for Opus (RFC 7587: dynamic; {@code a=rtpmap:111 opus/48000/2}). */
    public static final int OPUS = 111;
    /** Opus, then PCMU and PCMA: what a phone with real audio offers. */
    public static final List<Integer> OPUS_FIRST = List.of(OPUS, 0, 8);
    /** At most this many rtpmap attributes of the peer are kept (more are ignored). */
    private static final int MAX_RTPMAPS = 32;

    /** Whether {@code payloadType} is a dynamic one (RFC 3551 §3: 96-127); the only dynamic codec we use is Opus. */
    public static boolean isDynamic(int payloadType) {
        return payloadType >= 96 && payloadType <= 127;
    }

    /**
     * The codec an answer takes from an offer (RFC 3264 §6.1): the offerer's first listed payload type that we
     * support ({@link #AUDIO_PAYLOADS}); empty if there is none.
     */
    public static java.util.Optional<Integer> choose(List<Integer> offered) {
        return offered.stream().filter(AUDIO_PAYLOADS::contains).findFirst();
    }

    /**
     * The codec an answer takes from {@code offer} when we support {@code ours} ({@link #OPUS} standing for Opus at
     * whatever dynamic payload type the offer's {@code a=rtpmap} gives it): the offerer's first listed payload type we
     * support, as the offerer numbered it (RFC 3264 §6.1); empty if there is none.
     */
    public static java.util.Optional<Integer> choose(Sdp offer, List<Integer> ours) {
        for (int pt : offer.payloadTypes()) {
            if (isDynamic(pt) ? ours.contains(OPUS) && offer.isOpus(pt) : ours.contains(pt)) {
                return Optional.of(pt);
            }
        }
        return Optional.empty();
    }

    /** Whether this SDP maps dynamic payload type {@code pt} to Opus at 48 kHz ({@code opus/48000/2}, RFC 7587). */
    public boolean isOpus(int pt) {
        String map = rtpmap.get(pt);
        return map != null && map.equalsIgnoreCase("opus/48000/2");
    }
    private static final int MAX_LENGTH = 16 * 1024;
    private static final List<String> DIRECTIONS = List.of("sendrecv", "sendonly", "recvonly", "inactive");

    /** A sendrecv SDES stream. */
    public Sdp(String address, int port, List<Integer> payloadTypes, List<SdesCrypto> cryptos) {
        this(address, port, payloadTypes, cryptos, "sendrecv");
    }

    /** An SDES stream with a direction. */
    public Sdp(String address, int port, List<Integer> payloadTypes, List<SdesCrypto> cryptos, String direction) {
        this(address, port, payloadTypes, cryptos, direction, Optional.empty());
    }

    /** A stream whose dynamic payload types are ours (Opus, {@link #OPUS}). */
    public Sdp(String address, int port, List<Integer> payloadTypes, List<SdesCrypto> cryptos, String direction,
               Optional<DtlsAttributes> dtls) {
        this(address, port, payloadTypes, cryptos, direction, dtls, ourRtpmap(payloadTypes));
    }

    private static java.util.Map<Integer, String> ourRtpmap(List<Integer> payloadTypes) {
        java.util.Map<Integer, String> m = new java.util.TreeMap<>();
        for (int pt : payloadTypes) {
            if (isDynamic(pt)) {
                m.put(pt, "opus/48000/2");
            }
        }
        return m;
    }

    /** A sendrecv DTLS-SRTP stream. */
    public static Sdp dtlsSrtp(String address, int port, List<Integer> payloadTypes, DtlsAttributes dtls) {
        return new Sdp(address, port, payloadTypes, List.of(), "sendrecv", Optional.of(dtls));
    }

    /** The same stream with another direction attribute (sendrecv, sendonly, recvonly, inactive). */
    public Sdp withDirection(String d) {
        return new Sdp(address, port, payloadTypes, cryptos, d, dtls, rtpmap);
    }

    public Sdp {
        Objects.requireNonNull(address, "address");
        if (!DIRECTIONS.contains(direction)) {
            throw new IllegalArgumentException("unknown media direction " + direction);
        }
        payloadTypes = List.copyOf(payloadTypes);
        cryptos = List.copyOf(cryptos);
        rtpmap = java.util.Map.copyOf(rtpmap);
        Objects.requireNonNull(dtls, "dtls");
        if (dtls.isPresent() && !cryptos.isEmpty()) {
            throw new IllegalArgumentException("a DTLS-SRTP stream carries no SDES keys");
        }
    }

    /** The m= line's protocol: {@link #DTLS_PROTOCOL} for DTLS-SRTP, {@code RTP/SAVP} for SDES. */
    public String protocol() {
        return dtls.isPresent() ? DTLS_PROTOCOL : "RTP/SAVP";
    }

    /** The SDP text (CRLF line ends). {@code sessionId} is the o= line's session id and version. */
    public String encode(String user, long sessionId) {
        String ip = address.contains(":") ? "IP6" : "IP4";
        StringBuilder s = new StringBuilder();
        s.append("v=0\r\n");
        s.append("o=").append(user).append(' ').append(sessionId).append(' ').append(sessionId).append(" IN ")
                .append(ip).append(' ').append(address).append("\r\n");
        s.append("s=tpmphone\r\n");
        s.append("c=IN ").append(ip).append(' ').append(address).append("\r\n");
        s.append("t=0 0\r\n");
        s.append("m=audio ").append(port).append(' ').append(protocol());
        for (int pt : payloadTypes) {
            s.append(' ').append(pt);
        }
        s.append("\r\n");
        for (int pt : payloadTypes) {
            if (pt == 0) {
                s.append("a=rtpmap:0 PCMU/8000\r\n");
            } else if (pt == 8) {
                s.append("a=rtpmap:8 PCMA/8000\r\n");
            } else if (rtpmap.containsKey(pt)) {
                s.append("a=rtpmap:").append(pt).append(' ').append(rtpmap.get(pt)).append("\r\n");
            }
        }
        for (SdesCrypto c : cryptos) {
            s.append("a=").append(c.format()).append("\r\n");
        }
        if (dtls.isPresent()) {
            for (DtlsFingerprint f : dtls.get().fingerprints()) {
                s.append("a=fingerprint:").append(f.toSdp()).append("\r\n");
            }
            s.append("a=setup:").append(dtls.get().setup().sdp()).append("\r\n");
            if (dtls.get().rtcpMux()) {
                s.append("a=rtcp-mux\r\n");
            }
        }
        s.append("a=").append(direction).append("\r\n");
        return s.toString();
    }

    /**
     * Reads the peer's SDP: the session or media {@code c=} address, the first {@code m=audio} line's port and
     * payload types, and the {@code a=crypto} lines of that media section (malformed ones are refused, unknown
     * suites skipped).
     */
    public static Sdp parse(String text) {
        Objects.requireNonNull(text, "text");
        if (text.length() > MAX_LENGTH) {
            throw new IllegalArgumentException("the SDP is longer than " + MAX_LENGTH + " characters");
        }
        String sessionAddress = null;
        String mediaAddress = null;
        Integer port = null;
        List<Integer> payloads = new ArrayList<>();
        List<SdesCrypto> cryptos = new ArrayList<>();
        boolean inAudio = false;
        boolean seenAudio = false;
        String sessionDirection = "sendrecv";
        String mediaDirection = null;
        String protocol = null;
        List<DtlsFingerprint> sessionFingerprints = new ArrayList<>();
        List<DtlsFingerprint> mediaFingerprints = new ArrayList<>();
        int[] fingerprintAttributes = new int[2]; // session level, audio level
        String sessionSetup = null;
        String mediaSetup = null;
        boolean rtcpMux = false;
        java.util.Map<Integer, String> rtpmap = new java.util.TreeMap<>();
        for (String raw : text.split("\r?\n")) {
            String line = raw.strip();
            if (line.length() < 2 || line.charAt(1) != '=') {
                if (!line.isEmpty()) {
                    throw new IllegalArgumentException("SDP line \"" + abbreviate(line) + "\" is not type=value");
                }
                continue;
            }
            char type = line.charAt(0);
            String value = line.substring(2);
            if (type == 'm') {
                inAudio = false;
                if (value.startsWith("audio ") && !seenAudio) {
                    String[] f = value.split(" ");
                    if (f.length < 4) {
                        throw new IllegalArgumentException("the m=audio line has no port, protocol or formats");
                    }
                    protocol = f[2];
                    try {
                        port = Integer.parseInt(f[1]);
                        for (int i = 3; i < f.length; i++) {
                            payloads.add(Integer.parseInt(f[i]));
                        }
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("the m=audio line's port or formats are not numbers");
                    }
                    if (port < 0 || port > 65_535) {
                        throw new IllegalArgumentException("the m=audio port " + port + " is out of range");
                    }
                    inAudio = true;
                    seenAudio = true;
                }
            } else if (type == 'c') {
                String[] f = value.split(" ");
                if (f.length != 3 || !f[0].equals("IN") || !(f[1].equals("IP4") || f[1].equals("IP6"))) {
                    throw new IllegalArgumentException("the c= line is not 'IN IP4|IP6 address'");
                }
                if (port == null && !seenAudio) {
                    sessionAddress = f[2];
                } else if (inAudio) {
                    mediaAddress = f[2];
                }
            } else if (type == 'a' && DIRECTIONS.contains(value)) {
                if (inAudio) {
                    mediaDirection = value;
                } else if (!seenAudio) {
                    sessionDirection = value;
                }
            } else if (type == 'a' && value.startsWith("fingerprint:") && (inAudio || !seenAudio)) {
                List<DtlsFingerprint> to = inAudio ? mediaFingerprints : sessionFingerprints;
                if (++fingerprintAttributes[inAudio ? 1 : 0] > MAX_FINGERPRINTS) {
                    throw new IllegalArgumentException("the SDP has more than " + MAX_FINGERPRINTS + " fingerprints");
                }
                // Every attribute is read: another registered hash function beside ours is fine (RFC 8122 §5) and
                // skipped; a malformed, forbidden (md5) or unregistered one refuses the SDP with its reason.
                try {
                    DtlsFingerprint.parseAny(value.substring("fingerprint:".length())).ifPresent(to::add);
                } catch (MalformedExtensionException e) {
                    throw new IllegalArgumentException(e.getMessage(), e);
                }
            } else if (type == 'a' && value.startsWith("setup:") && (inAudio || !seenAudio)) {
                if (inAudio) {
                    mediaSetup = value.substring("setup:".length());
                } else {
                    sessionSetup = value.substring("setup:".length());
                }
            } else if (type == 'a' && inAudio && value.startsWith("rtpmap:")) {
                // a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>] (RFC 4566 §6); a malformed one is
                // ignored like any attribute we do not use: its payload type then maps to nothing we support
                String[] f = value.substring("rtpmap:".length()).split(" ", 2);
                // only dynamic payload types need one: the static ones' encodings are fixed (RFC 3551)
                if (f.length == 2 && f[0].matches("[0-9]{1,3}") && isDynamic(Integer.parseInt(f[0]))
                        && f[1].strip().matches("[A-Za-z0-9._/-]{1,64}") && rtpmap.size() < MAX_RTPMAPS) {
                    rtpmap.put(Integer.parseInt(f[0]), f[1].strip());
                }
            } else if (type == 'a' && inAudio && value.equals("rtcp-mux")) {
                rtcpMux = true;
            } else if (type == 'a' && inAudio && value.startsWith("crypto:")) {
                try {
                    cryptos.add(SdesCrypto.parse(value));
                } catch (IllegalArgumentException e) {
                    if (!e.getMessage().startsWith("crypto suite")) {
                        throw new IllegalArgumentException("a crypto attribute is malformed: " + e.getMessage(), e);
                    }
                    // an unknown suite among others is fine: we pick one we support
                }
            }
        }
        if (port == null) {
            throw new IllegalArgumentException("the SDP has no m=audio line");
        }
        String address = mediaAddress != null ? mediaAddress : sessionAddress;
        if (address == null) {
            throw new IllegalArgumentException("the SDP has no c= line for the audio stream");
        }
        String direction = mediaDirection != null ? mediaDirection : sessionDirection;
        if (!DTLS_PROTOCOL.equals(protocol) && !"UDP/TLS/RTP/SAVPF".equals(protocol)) {
            return new Sdp(address, port, payloads, cryptos, direction, Optional.empty(), rtpmap);
        }
        List<DtlsFingerprint> fingerprints = mediaFingerprints.isEmpty() ? sessionFingerprints : mediaFingerprints;
        if (fingerprints.isEmpty()) {
            throw new IllegalArgumentException("the DTLS-SRTP stream has no a=fingerprint we can check (sha-256, "
                    + "sha-384 or sha-512)");
        }
        String setupValue = mediaSetup != null ? mediaSetup : sessionSetup;
        DtlsSetup setup;
        try {
            setup = setupValue == null ? DtlsSetup.ACTIVE : DtlsSetup.parse(setupValue); // RFC 4145 §4's default
        } catch (MalformedExtensionException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
        // SDES keys beside DTLS-SRTP are ignored: the keys come from the handshake, never from the signalling.
        return new Sdp(address, port, payloads, List.of(), direction,
                Optional.of(new DtlsAttributes(fingerprints, setup, rtcpMux)), rtpmap);
    }

    /**
     * What {@code later} (the SDP of a 2xx) changes of this one's media identity (the answer of a reliable
     * provisional response): its connection address, port, DTLS fingerprints or setup role. RFC 3262 §5 and RFC 3264:
     * once an answer came in a reliable provisional, the 2xx carries the same SDP or none; a different media identity
     * after the far end's evidence passed is what a proxy or attacker swapping the far end would send. Empty when
     * nothing of it changed. Names what changed, never the peer's text.
     */
    public Optional<String> mediaIdentityChange(Sdp later) {
        List<String> changed = new ArrayList<>();
        if (!address.equals(later.address)) {
            changed.add("connection address");
        }
        if (port != later.port) {
            changed.add("port " + port + " → " + later.port);
        }
        if (dtls.isPresent() != later.dtls.isPresent()) {
            changed.add("media protocol");
        } else if (dtls.isPresent()) {
            if (!new java.util.HashSet<>(dtls.get().fingerprints()).equals(
                    new java.util.HashSet<>(later.dtls.get().fingerprints()))) {
                changed.add("a=fingerprint");
            }
            if (dtls.get().setup() != later.dtls.get().setup()) {
                changed.add("a=setup " + dtls.get().setup().sdp() + " → " + later.dtls.get().setup().sdp());
            }
        }
        return changed.isEmpty() ? Optional.empty() : Optional.of(String.join(", ", changed));
    }

    /**
     * What a re-offer or its answer ({@code later}) in an established DTLS-SRTP call changes of the association this
     * SDP set up (RFC 5763 §6.7.1, RFC 8842 §5): the same fingerprints, address and port keep it; {@code a=setup} may
     * be {@code actpass} in a re-offer, or the role the far end has. Empty when the association stands.
     */
    public Optional<String> associationChange(Sdp later) {
        Optional<String> changed = withSetup(later.dtls.map(d -> d.setup()).orElse(DtlsSetup.ACTPASS))
                .mediaIdentityChange(later);
        if (changed.isPresent() || later.dtls.isEmpty()) {
            return changed;
        }
        DtlsSetup role = dtls.orElseThrow().setup();
        DtlsSetup now = later.dtls.get().setup();
        boolean sameRole = now == role || now == DtlsSetup.ACTPASS || role == DtlsSetup.ACTPASS
                && now == DtlsSetup.PASSIVE;
        return sameRole ? Optional.empty() : Optional.of("a=setup " + role.sdp() + " → " + now.sdp());
    }

    private Sdp withSetup(DtlsSetup setup) {
        return dtls.isEmpty() ? this : new Sdp(address, port, payloadTypes, cryptos, direction, Optional.of(
                new DtlsAttributes(dtls.get().fingerprints(), setup, dtls.get().rtcpMux())), rtpmap);
    }

    private static String abbreviate(String s) {
        return s.length() > 40 ? s.substring(0, 40) + "…" : s;
    }
}
