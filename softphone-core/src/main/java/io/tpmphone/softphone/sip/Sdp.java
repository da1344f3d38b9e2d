package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.SdesCrypto;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The SDP we offer and answer (RFC 4566, RFC 4568): one audio stream over RTP/SAVP with PCMU and PCMA and one SDES
 * crypto attribute per key — and a strict reader for the peer's: one audio m-line, its connection address and port,
 * its payload types, and its crypto attributes. Anything else in the peer's SDP is ignored; a missing or malformed
 * essential line is an {@link IllegalArgumentException} naming it. Immutable.
 */
public record Sdp(String address, int port, List<Integer> payloadTypes, List<SdesCrypto> cryptos,
                  String direction) {
    /** PCMU/8000 and PCMA/8000. */
    public static final List<Integer> AUDIO_PAYLOADS = List.of(0, 8);

    /**
     * The codec an answer takes from an offer (RFC 3264 §6.1): the offerer's first listed payload type that we
     * support ({@link #AUDIO_PAYLOADS}); empty if there is none.
     */
    public static java.util.Optional<Integer> choose(List<Integer> offered) {
        return offered.stream().filter(AUDIO_PAYLOADS::contains).findFirst();
    }
    private static final int MAX_LENGTH = 16 * 1024;
    private static final List<String> DIRECTIONS = List.of("sendrecv", "sendonly", "recvonly", "inactive");

    /** A sendrecv stream. */
    public Sdp(String address, int port, List<Integer> payloadTypes, List<SdesCrypto> cryptos) {
        this(address, port, payloadTypes, cryptos, "sendrecv");
    }

    /** The same stream with another direction attribute (sendrecv, sendonly, recvonly, inactive). */
    public Sdp withDirection(String d) {
        return new Sdp(address, port, payloadTypes, cryptos, d);
    }

    public Sdp {
        Objects.requireNonNull(address, "address");
        if (!DIRECTIONS.contains(direction)) {
            throw new IllegalArgumentException("unknown media direction " + direction);
        }
        payloadTypes = List.copyOf(payloadTypes);
        cryptos = List.copyOf(cryptos);
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
        s.append("m=audio ").append(port).append(" RTP/SAVP");
        for (int pt : payloadTypes) {
            s.append(' ').append(pt);
        }
        s.append("\r\n");
        for (int pt : payloadTypes) {
            if (pt == 0) {
                s.append("a=rtpmap:0 PCMU/8000\r\n");
            } else if (pt == 8) {
                s.append("a=rtpmap:8 PCMA/8000\r\n");
            }
        }
        for (SdesCrypto c : cryptos) {
            s.append("a=").append(c.format()).append("\r\n");
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
        return new Sdp(address, port, payloads, cryptos, mediaDirection != null ? mediaDirection : sessionDirection);
    }

    private static String abbreviate(String s) {
        return s.length() > 40 ? s.substring(0, 40) + "…" : s;
    }
}
