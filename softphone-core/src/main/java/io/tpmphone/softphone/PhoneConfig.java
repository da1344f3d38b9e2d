package io.tpmphone.softphone;

import java.io.IOException;
import java.io.Reader;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;

/**
 * The measured softphone's configuration file (Java properties; it is measured with the code, so a changed file is a
 * different, unapproved state):
 * <pre>
 *   sip.user=alice                  # our user part
 *   sip.host=alice                  # our attested host name (the device certificate's CN); default: sip.user
 *   sip.address=127.0.0.1           # where SIP and RTP listen
 *   sip.tls.port=5061               # attested TLS (required)
 *   sip.tcp.port=0                  # plain TCP, 0 = off
 *   sip.udp.port=0                  # plain UDP, 0 = off
 *   sip.setup.timeout.seconds=15
 *   sip.calls.history=100           # ended and refused calls kept for the user (a bound, 1..1000; default 100)
 *   policy.1=default MEASURED reject   # the call policy (CallPolicy), one line per key, in key order
 *   policy.2=in sips:*@lab HARDENED reject  # each level is the lowest one that line accepts
 *   media.tone.hz=1000              # the headless capture device plays this tone (0 = silence)
 *   media.mode=auto                 # auto | dtls-srtp | sdes: how calls' media is keyed (SipPhone.MediaMode)
 *   media.audio=pulseaudio          # tone (default: the tone above, what arrives kept in memory) or pulseaudio
 *   media.microphone=alsa_input.usb-…   # the sound server's source to record (default: the server's default)
 *   media.speaker=alsa_output.usb-…     # the sound server's sink to play to (default: the server's default)
 *   media.server=unix:/run/…/native     # the sound server (default: the socket the agent grants for each call)
 *   media.codecs=opus,pcmu,pcma     # offered in this order (default: opus,pcmu,pcma with pulseaudio, else pcmu,pcma)
 *   phone.answer=ring               # ring: a person answers or declines on the ring screen; auto: answer every call
 *                                   # the policy accepts (default: ring with pulseaudio, auto with the tone device)
 * </pre>
 * Unknown keys are refused, so a typo does not silently fall back to a default; errors name the key (and for a policy
 * line, the line as written). The control socket is not configured here: the agent that launches the softphone
 * prepares its place and names it ({@code STATE/control/control.sock}). Immutable.
 */
public record PhoneConfig(String user, String host, InetAddress address, int tlsPort, int tcpPort, int udpPort,
                          Duration setupTimeout, CallPolicy policy, List<String> policyLines, double toneHz,
                          Audio audio, boolean autoAnswer, io.tpmphone.softphone.sip.SipPhone.MediaMode mediaMode,
                          int callHistory) {
    private static final Set<String> KEYS = Set.of("sip.user", "sip.host", "sip.address", "sip.tls.port",
            "sip.tcp.port", "sip.udp.port", "sip.setup.timeout.seconds", "sip.calls.history", "media.tone.hz",
            "media.audio",
            "media.microphone", "media.speaker", "media.server", "media.codecs", "phone.answer", "media.mode");
    /**
     * Where the measured softphone finds the sound server when {@code media.server} is not set: the socket the agent
     * grants for the duration of each call, in the {@code sound} directory of its working directory.
     */
    public static final String AGENT_SOUND_SOCKET = "sound/native";
    /** Codec names of {@code media.codecs} and their payload types (Opus: our dynamic 111). */
    private static final java.util.Map<String, Integer> CODECS = java.util.Map.of("opus", 111, "pcmu", 0, "pcma", 8);
    /** Sound server device names: PulseAudio's source and sink names. */
    private static final java.util.regex.Pattern DEVICE = java.util.regex.Pattern.compile("[A-Za-z0-9._:@+-]{1,200}");

    /**
     * The phone's audio: {@code tone} (the headless device) or {@code pulseaudio} (the sound server's microphone and
     * speaker, by name, empty for the server's default); the server's address, empty for the agent's per-call socket;
     * the payload types offered, in order.
     */
    public record Audio(String kind, java.util.Optional<String> server, java.util.Optional<String> microphone,
                        java.util.Optional<String> speaker, List<Integer> payloadTypes) {
        public Audio {
            payloadTypes = List.copyOf(payloadTypes);
        }

        /** Whether the phone uses the sound server (else the tone device). */
        public boolean soundServer() {
            return kind.equals("pulseaudio");
        }
    }

    public PhoneConfig {
        policyLines = List.copyOf(policyLines);
        java.util.Objects.requireNonNull(audio, "audio");
        java.util.Objects.requireNonNull(mediaMode, "mediaMode");
        if (callHistory < 1 || callHistory > MAX_CALL_HISTORY) {
            throw new IllegalArgumentException("sip.calls.history must be 1.." + MAX_CALL_HISTORY + ", got "
                    + callHistory);
        }
    }

    /** The most ended calls {@code sip.calls.history} may keep. */
    public static final int MAX_CALL_HISTORY = 1000;

    /** Reads and checks {@code file}; errors name the key and what is wrong. */
    public static PhoneConfig read(Path file) throws IOException {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        }
        return of(p);
    }

    public static PhoneConfig of(Properties p) {
        TreeMap<Integer, String> policy = new TreeMap<>();
        for (String key : p.stringPropertyNames()) {
            if (key.startsWith("policy.")) {
                try {
                    policy.put(Integer.parseInt(key.substring(7)), p.getProperty(key));
                    if (p.getProperty(key).contains("\n") || p.getProperty(key).contains("\r")) {
                        throw new IllegalArgumentException(key + ": one rule per key (no line breaks in a rule)");
                    }
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("policy keys are policy.1, policy.2, ...: got " + key, e);
                }
            } else if (key.equals("control.socket")) {
                throw new IllegalArgumentException("control.socket=" + p.getProperty(key) + ": the agent places the"
                        + " control socket itself (at STATE/control/control.sock, for the softphone's user only):"
                        + " remove this line");
            } else if (!KEYS.contains(key)) {
                throw new IllegalArgumentException("unknown configuration key " + key + " (known: "
                        + String.join(", ", new java.util.TreeSet<>(KEYS)) + ", policy.N)");
            }
        }
        String user = required(p, "sip.user");
        if (!user.matches("[A-Za-z0-9._~-]{1,64}")) {
            throw new IllegalArgumentException("sip.user must be 1-64 characters of A-Z a-z 0-9 . _ ~ -: " + user);
        }
        String host = p.getProperty("sip.host", user).trim();
        InetAddress address;
        try {
            address = InetAddress.getByName(p.getProperty("sip.address", "127.0.0.1").trim());
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("sip.address is not an address: " + e.getMessage(), e);
        }
        int tls = port(p, "sip.tls.port", -1);
        if (tls <= 0) {
            throw new IllegalArgumentException("sip.tls.port is required (1-65535)");
        }
        List<String> lines = new ArrayList<>(policy.values());
        if (lines.isEmpty()) {
            throw new IllegalArgumentException("no call policy: add policy.1=default MEASURED reject (and more lines)");
        }
        // Errors name the line as written ("policy.3=in sip:*@x MEASURD accept: unknown level ..."), not its position
        // among the keys.
        List<Integer> numbers = new ArrayList<>(policy.keySet());
        CallPolicy parsed = CallPolicy.parse(lines, i -> "policy." + numbers.get(i) + "=" + lines.get(i).trim());
        double tone;
        try {
            tone = Double.parseDouble(p.getProperty("media.tone.hz", "0").trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("media.tone.hz is not a number", e);
        }
        if (tone < 0 || tone > 3900) {
            throw new IllegalArgumentException("media.tone.hz must be 0..3900 (8 kHz sampling)");
        }
        long timeout;
        try {
            timeout = Long.parseLong(p.getProperty("sip.setup.timeout.seconds", "15").trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("sip.setup.timeout.seconds is not a number", e);
        }
        if (timeout < 1 || timeout > 300) {
            throw new IllegalArgumentException("sip.setup.timeout.seconds must be 1..300");
        }
        int history;
        try {
            history = Integer.parseInt(p.getProperty("sip.calls.history",
                    Integer.toString(io.tpmphone.softphone.sip.SipPhone.Limits.DEFAULTS.endedHistory())).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("sip.calls.history is not a number", e);
        }
        if (history < 1 || history > MAX_CALL_HISTORY) {
            throw new IllegalArgumentException("sip.calls.history must be 1.." + MAX_CALL_HISTORY);
        }
        Audio audio = audio(p);
        String answer = p.getProperty("phone.answer", audio.soundServer() ? "ring" : "auto").trim();
        if (!answer.equals("ring") && !answer.equals("auto")) {
            throw new IllegalArgumentException("phone.answer must be ring (a person answers) or auto (every call the"
                    + " policy accepts is answered), got " + answer);
        }
        boolean autoAnswer = answer.equals("auto");
        io.tpmphone.softphone.sip.SipPhone.MediaMode mode;
        try {
            mode = io.tpmphone.softphone.sip.SipPhone.MediaMode.parse(p.getProperty("media.mode", "auto"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("media.mode must be auto, dtls-srtp or sdes", e);
        }
        return new PhoneConfig(user, host, address, tls, port(p, "sip.tcp.port", 0), port(p, "sip.udp.port", 0),
                Duration.ofSeconds(timeout), parsed, lines, tone, audio, autoAnswer, mode, history);
    }

    private static Audio audio(Properties p) {
        String kind = p.getProperty("media.audio", "tone").trim();
        if (!kind.equals("tone") && !kind.equals("pulseaudio")) {
            throw new IllegalArgumentException("media.audio must be tone or pulseaudio, got " + kind);
        }
        java.util.Optional<String> microphone = device(p, "media.microphone");
        java.util.Optional<String> speaker = device(p, "media.speaker");
        java.util.Optional<String> server = java.util.Optional.ofNullable(p.getProperty("media.server"))
                .map(String::trim);
        if (server.isPresent() && !server.get().matches("unix:/[A-Za-z0-9._/+-]{1,200}")) {
            throw new IllegalArgumentException("media.server must be unix:/PATH (the sound server's native-protocol"
                    + " socket), got " + server.get());
        }
        if (!kind.equals("pulseaudio") && (microphone.isPresent() || speaker.isPresent() || server.isPresent())) {
            throw new IllegalArgumentException("media.microphone, media.speaker and media.server need"
                    + " media.audio=pulseaudio");
        }
        String codecs = p.getProperty("media.codecs", kind.equals("pulseaudio") ? "opus,pcmu,pcma" : "pcmu,pcma");
        List<Integer> payloads = new ArrayList<>();
        for (String c : codecs.split(",")) {
            Integer pt = CODECS.get(c.trim().toLowerCase(java.util.Locale.ROOT));
            if (pt == null) {
                throw new IllegalArgumentException("media.codecs: unknown codec \"" + c.trim() + "\" (known: opus,"
                        + " pcmu, pcma)");
            }
            if (payloads.contains(pt)) {
                throw new IllegalArgumentException("media.codecs names " + c.trim() + " twice");
            }
            payloads.add(pt);
        }
        if (payloads.contains(111) && !kind.equals("pulseaudio")) {
            throw new IllegalArgumentException("media.codecs: opus needs media.audio=pulseaudio (the tone device is"
                    + " 8 kHz)");
        }
        return new Audio(kind, server, microphone, speaker, payloads);
    }

    private static java.util.Optional<String> device(Properties p, String key) {
        String v = p.getProperty(key);
        if (v == null || v.isBlank()) {
            return java.util.Optional.empty();
        }
        if (!DEVICE.matcher(v.trim()).matches()) {
            throw new IllegalArgumentException(key + " must be a sound server device name (letters, digits and"
                    + " ._:@+-), got " + v.trim());
        }
        return java.util.Optional.of(v.trim());
    }

    private static String required(Properties p, String key) {
        String v = p.getProperty(key);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException(key + " is required");
        }
        return v.trim();
    }

    private static int port(Properties p, String key, int absent) {
        String v = p.getProperty(key);
        if (v == null) {
            return absent;
        }
        try {
            int port = Integer.parseInt(v.trim());
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException(key + " must be 0..65535");
            }
            return port;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " is not a port number: " + v, e);
        }
    }
}
