package io.tpmphone.rig;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A packet capture on loopback with tshark (installed by the test prerequisites and by {@code ./tpmphone demo}; a
 * missing tshark, or no right to capture, fails with an {@link IOException} saying so), and what the wire shows: the
 * RTP payloads sent to a port, the DTLS and RTP/SRTP datagrams sent to a media port, what of a TCP port's traffic
 * is in clear, and how much of a tone payloads carry if decoded as G.711. The end-to-end tests and the demo's proxy
 * step use it.
 */
public final class Capture {
    private final Process tshark;
    private final Path file;

    private Capture(Process tshark, Path file) {
        this.tshark = tshark;
        this.file = file;
    }

    /**
     * Starts capturing UDP on loopback into {@code file}; returns once a probe datagram sent after the start has been
     * captured. tshark prints "Capturing on" before dumpcap's capture is live (CI saw a DTLS-SRTP call's handshake and
     * its first seconds of SRTP missing from a capture started that way), so the only proof that the capture sees
     * what follows is a packet it saw: tshark prints each packet's summary ({@code -P}), and a probe from a socket of
     * our own to another is sent every 100 ms until its summary line appears.
     */
    public static Capture start(Path file) throws IOException, InterruptedException {
        return start(file, "udp");
    }

    /** As {@link #start(Path)}, capturing what the capture {@code filter} (pcap syntax, UDP among it) takes. */
    public static Capture start(Path file, String filter) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder("tshark", "-i", "lo", "-f", filter, "-w", file.toString(), "-P", "-l")
                    .redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new IOException("cannot run tshark (is it installed? Debian: apt-get install tshark): "
                    + e.getMessage(), e);
        }
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        try (DatagramSocket from = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
             DatagramSocket to = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            Pattern probe = Pattern.compile("\\b" + from.getLocalPort() + "\\b.*\\b" + to.getLocalPort() + "\\b.*Len=");
            byte[] payload = "tpmphone capture probe".getBytes(StandardCharsets.US_ASCII);
            DatagramPacket packet = new DatagramPacket(payload, payload.length, to.getLocalSocketAddress());
            ScheduledExecutorService prober = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "capture-probe");
                t.setDaemon(true);
                return t;
            });
            prober.scheduleAtFixedRate(() -> {
                try {
                    from.send(packet);
                } catch (IOException e) {
                    // the socket closed: the capture is live or given up
                }
            }, 0, 100, TimeUnit.MILLISECONDS);
            // a capture that never goes live prints nothing, so the wait ends by ending tshark (its output then ends)
            var giveUp = prober.schedule(p::destroyForcibly, 30, TimeUnit.SECONDS);
            StringBuilder seen = new StringBuilder();
            try {
                for (String line; (line = out.readLine()) != null; ) {
                    if (probe.matcher(line).find() && giveUp.cancel(false)) {
                        drain(out);
                        return new Capture(p, file);
                    }
                    if (seen.length() < 2000) {
                        seen.append(line).append('\n');
                    }
                }
            } finally {
                prober.shutdownNow();
            }
            p.destroyForcibly();
            throw new IOException("tshark did not capture a probe sent on lo within 30 s (is it installed, and are we "
                    + "root?); it printed:\n" + seen);
        }
    }

    private static void drain(BufferedReader out) {
        Thread drain = new Thread(() -> {
            try {
                while (out.readLine() != null) {
                    // keep tshark's output pipe from filling up
                }
            } catch (IOException ignored) {
                // tshark ended
            }
        }, "tshark-output");
        drain.setDaemon(true);
        drain.start();
    }

    /** Stops the capture (once; later calls return at once). */
    public void stop() throws InterruptedException {
        tshark.destroy();
        if (!tshark.waitFor(10, TimeUnit.SECONDS)) {
            tshark.destroyForcibly();
            tshark.waitFor(10, TimeUnit.SECONDS);
        }
    }

    /** Stops the capture and returns the RTP payloads of the packets sent to {@code port}. */
    public List<byte[]> stopAndReadRtpPayloads(int port) throws IOException, InterruptedException {
        stop();
        Process read = new ProcessBuilder("tshark", "-r", file.toString(), "-d", "udp.port==" + port + ",rtp",
                "-Y", "rtp && udp.dstport==" + port, "-T", "fields", "-e", "rtp.payload").start();
        List<byte[]> payloads = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(read.getInputStream(),
                StandardCharsets.US_ASCII))) {
            for (String line; (line = r.readLine()) != null; ) {
                String hex = line.replace(":", "").trim();
                if (!hex.isEmpty()) {
                    payloads.add(HexFormat.of().parseHex(hex));
                }
            }
        }
        if (!read.waitFor(30, TimeUnit.SECONDS) || read.exitValue() != 0) {
            throw new IOException("tshark could not read " + file);
        }
        return payloads;
    }

    /**
     * What a capture saw on one media port: DTLS records, and the payloads of RTP (or SRTP) packets, with the payload
     * type of the first of them ({@code -1}: none), how many RTP/SRTP packets came before the first DTLS record
     * (DTLS-SRTP: none may, the keys come from the handshake), and how many came between it and the last DTLS
     * handshake record (content type 20 or 22): none may either — the keys exist only once the handshake is done.
     */
    public record Media(int dtls, List<byte[]> rtpPayloads, int payloadType, int rtpBeforeDtls,
                        int rtpDuringHandshake) {
        /** Samples judged together: 160 ms of G.711 (8 packets of 20 ms). */
        static final int WINDOW = 1280;

        /** G.711's bytes per 10 ms: a clear frame is a multiple of it, SRTP adds its 4- or 10-byte tag. */
        static final int G711_10MS = 80;

        public Media(int dtls, List<byte[]> rtpPayloads) {
            this(dtls, rtpPayloads, -1, 0, 0);
        }

        public Media(int dtls, List<byte[]> rtpPayloads, int payloadType) {
            this(dtls, rtpPayloads, payloadType, 0, 0);
        }

        public Media(int dtls, List<byte[]> rtpPayloads, int payloadType, int rtpBeforeDtls) {
            this(dtls, rtpPayloads, payloadType, rtpBeforeDtls, 0);
        }

        /**
         * Whether this port's media is shown to be DTLS-SRTP (the demo's wire check): DTLS came, no RTP/SRTP before
         * the handshake ended (the keys come from it), no payload is a bare G.711 frame (an SRTP packet carries its
         * auth tag), at least 20 packets, and decoded as their G.711 codec no 160 ms carries 10 % of either tone
         * ({@code frequencies}). A codec this cannot decode is not shown to be anything.
         */
        public boolean shownToBeSrtp(double... frequencies) {
            java.util.OptionalDouble share = toneShare(frequencies);
            return dtls > 0 && rtpBeforeDtls == 0 && rtpDuringHandshake == 0 && bareG711Frames() == 0
                    && rtpPayloads.size() >= 20 && share.isPresent() && share.getAsDouble() < 0.10;
        }

        /**
         * How many payloads are exactly whole G.711 frames (a multiple of 80 bytes: 160 for 20 ms) with this
         * capture's G.711 payload type: clear RTP. SRTP appends its authentication tag (RFC 3711 §3.1: 10 bytes for
         * {@code _80}, 4 for {@code _32}), so an SRTP packet of G.711 is never one — whatever its audio (silence,
         * speech or noise looks no different from ciphertext to {@link #toneShare}). 0 for another codec.
         */
        public int bareG711Frames() {
            if (payloadType != 0 && payloadType != 8) {
                return 0;
            }
            return (int) rtpPayloads.stream().filter(p -> p.length > 0 && p.length % G711_10MS == 0).count();
        }

        /**
         * The datagrams one port received, in the order they came, sorted by their first byte (RFC 7983 §7): DTLS
         * (20..63) counted, RTP/SRTP (128..191) kept as the payload after its header, RTCP multiplexed on the port
         * (RFC 5761 §4) and anything else left out.
         */
        public static Media of(List<byte[]> datagrams) {
            int dtls = 0;
            int before = 0;
            int sinceDtls = 0; // RTP since the first DTLS record, up to the latest handshake record
            int during = 0;
            int payloadType = -1;
            List<byte[]> rtp = new ArrayList<>();
            for (byte[] d : datagrams) {
                int first = d.length == 0 ? 0 : d[0] & 0xff;
                if (first >= 20 && first <= 63) {
                    dtls++;
                    if (first == 20 || first == 22) {
                        during += sinceDtls; // the handshake was still going on: those packets came during it
                        sinceDtls = 0;
                    }
                } else if (first >= 128 && first <= 191 && d.length > 12) {
                    int pt = d[1] & 0x7f;
                    if (pt >= 64 && pt <= 95) {
                        continue;
                    }
                    int header = 12 + 4 * (first & 0x0f);
                    if ((first & 0x10) != 0 && d.length >= header + 4) { // a header extension (RFC 3550 §5.3.1)
                        header += 4 + 4 * (((d[header + 2] & 0xff) << 8) | (d[header + 3] & 0xff));
                    }
                    if (d.length > header) {
                        payloadType = payloadType < 0 ? pt : payloadType;
                        rtp.add(java.util.Arrays.copyOfRange(d, header, d.length));
                        if (dtls == 0) {
                            before++;
                        } else {
                            sinceDtls++;
                        }
                    }
                }
            }
            return new Media(dtls, List.copyOf(rtp), payloadType, before, during);
        }

        @Override
        public String toString() {
            return dtls + " DTLS datagrams, " + rtpPayloads.size() + " RTP/SRTP packets"
                    + (payloadType < 0 ? "" : " (payload type " + payloadType + ")")
                    + (rtpBeforeDtls == 0 ? "" : ", " + rtpBeforeDtls + " of them BEFORE any DTLS")
                    + (rtpDuringHandshake == 0 ? "" : ", " + rtpDuringHandshake + " DURING the DTLS handshake")
                    + (bareG711Frames() == 0 ? "" : ", " + bareG711Frames() + " of bare G.711 frame size (clear RTP,"
                            + " no SRTP tag)");
        }

        /**
         * The largest share of energy at any of {@code frequencies} in any {@link #WINDOW} of the payloads decoded as
         * their G.711 codec (payload type 0: PCMU, 8: PCMA), over the whole capture: near 1 where a clear tone was
         * sent even for a moment, near 0 when every packet is SRTP's ciphertext; empty for another codec, which this
         * cannot judge.
         */
        public java.util.OptionalDouble toneShare(double... frequencies) {
            if (payloadType != 0 && payloadType != 8) {
                return java.util.OptionalDouble.empty();
            }
            java.util.function.IntUnaryOperator decode = payloadType == 0 ? Capture::ulaw : Capture::alaw;
            double most = 0;
            for (double f : frequencies) {
                most = Math.max(most, mostInAnyWindow(rtpPayloads, f, decode));
            }
            return java.util.OptionalDouble.of(most);
        }
    }

    /**
     * What a capture saw of a TCP port's traffic (both directions): segments with a payload, their bytes, and which of
     * {@code markers} appeared in clear in any of them (for SIP over TLS: none may).
     */
    public record Tcp(int segments, long bytes, List<String> inClear) {
        @Override
        public String toString() {
            return segments + " TCP segments with " + bytes + " bytes" + (inClear.isEmpty() ? ", nothing in clear"
                    : ", IN CLEAR: " + inClear);
        }
    }

    /** Stops the capture and reads what crossed TCP {@code port}, looking for {@code markers} in clear. */
    public Tcp stopAndReadTcp(int port, String... markers) throws IOException, InterruptedException {
        stop();
        // each segment's own bytes (no reassembly, which would move them to tcp.segment_data)
        return readPayloads(List.of("-o", "tcp.desegment_tcp_streams:FALSE",
                "-Y", "tcp.port==" + port + " && tcp.len>0", "-T", "fields", "-e", "tcp.payload"), markers);
    }

    /**
     * Stops the capture and reads the UDP datagrams to or from {@code port} (both directions), looking for
     * {@code markers} in clear: SIP over UDP to a proxy's UDP listener would be readable by anyone on the path.
     * Returned as a {@link Tcp} of datagrams.
     */
    public Tcp stopAndReadUdp(int port, String... markers) throws IOException, InterruptedException {
        stop();
        return readPayloads(List.of("-Y", "udp.port==" + port, "-T", "fields", "-e", "udp.payload"), markers);
    }

    /**
     * Reads the capture with tshark {@code filter} (which prints one hex payload per line) and counts the payloads,
     * their bytes and which {@code markers} appear in clear in any of them.
     */
    private Tcp readPayloads(List<String> filter, String... markers) throws IOException, InterruptedException {
        List<String> command = new java.util.ArrayList<>(List.of("tshark", "-r", file.toString()));
        command.addAll(filter);
        Process read = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        int payloads = 0;
        long bytes = 0;
        java.util.Set<String> seen = new java.util.LinkedHashSet<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(read.getInputStream(),
                StandardCharsets.US_ASCII))) {
            for (String line; (line = r.readLine()) != null; ) {
                String hex = line.replace(":", "").trim();
                if (hex.isEmpty()) {
                    continue;
                }
                byte[] d = HexFormat.of().parseHex(hex);
                payloads++;
                bytes += d.length;
                String text = new String(d, StandardCharsets.ISO_8859_1);
                for (String m : markers) {
                    if (text.contains(m)) {
                        seen.add(m);
                    }
                }
            }
        }
        if (!read.waitFor(30, TimeUnit.SECONDS) || read.exitValue() != 0) {
            throw new IOException("tshark could not read " + file);
        }
        return new Tcp(payloads, bytes, List.copyOf(seen));
    }

    /**
     * Stops the capture and sorts the UDP datagrams sent to {@code port} by their first byte (RFC 7983 §7): DTLS
     * (20..63) counted, RTP/SRTP (128..191) kept as the payload after its header — without the dissectors' guesses,
     * which take a port carrying DTLS for DTLS only.
     */
    public Media stopAndReadMedia(int port) throws IOException, InterruptedException {
        return stopAndReadMedia(List.of(port)).get(port);
    }

    /** As {@link #stopAndReadMedia(int)}, for each of {@code ports} in one reading of the capture. */
    public java.util.Map<Integer, Media> stopAndReadMedia(List<Integer> ports) throws IOException,
            InterruptedException {
        stop();
        StringBuilder filter = new StringBuilder();
        for (int port : ports) {
            filter.append(filter.length() == 0 ? "" : " || ").append("udp.dstport==").append(port);
        }
        Process read = new ProcessBuilder("tshark", "-r", file.toString(), "-Y", filter.toString(), "-T", "fields",
                "-e", "udp.dstport", "-e", "udp.payload").redirectError(ProcessBuilder.Redirect.DISCARD).start();
        java.util.Map<Integer, List<byte[]>> datagrams = new java.util.HashMap<>();
        for (int port : ports) {
            datagrams.put(port, new ArrayList<>());
        }
        try (BufferedReader r = new BufferedReader(new InputStreamReader(read.getInputStream(),
                StandardCharsets.US_ASCII))) {
            for (String line; (line = r.readLine()) != null; ) {
                String[] f = line.split("\t", 2);
                String hex = f.length < 2 ? "" : f[1].replace(":", "").trim();
                Integer port = hex.isEmpty() ? null : Integer.valueOf(f[0].trim());
                if (port == null || !datagrams.containsKey(port)) {
                    continue;
                }
                datagrams.get(port).add(HexFormat.of().parseHex(hex));
            }
        }
        if (!read.waitFor(30, TimeUnit.SECONDS) || read.exitValue() != 0) {
            throw new IOException("tshark could not read " + file);
        }
        java.util.Map<Integer, Media> out = new java.util.LinkedHashMap<>();
        for (int port : ports) {
            out.put(port, Media.of(datagrams.get(port)));
        }
        return out;
    }

    /**
     * The largest share of energy at {@code frequency} in any {@link Media#WINDOW} of the payloads decoded as PCMU:
     * near 1 where the clear tone was sent even for a moment, near 0 when every packet is ciphertext.
     */
    public static double toneShareIfPcmu(List<byte[]> payloads, double frequency) {
        return mostInAnyWindow(payloads, frequency, Capture::ulaw);
    }

    /** {@link #toneShare} of each {@link Media#WINDOW} of the payloads (the last may be shorter), the largest. */
    private static double mostInAnyWindow(List<byte[]> payloads, double frequency,
                                          java.util.function.IntUnaryOperator decode) {
        double most = 0;
        List<byte[]> window = new ArrayList<>();
        int samples = 0;
        for (byte[] p : payloads) {
            window.add(p);
            samples += p.length;
            if (samples >= Media.WINDOW) {
                most = Math.max(most, toneShare(window, frequency, decode));
                window.clear();
                samples = 0;
            }
        }
        if (samples >= 160 || most == 0 && samples > 0) {
            most = Math.max(most, toneShare(window, frequency, decode));
        }
        return most;
    }

    private static double toneShare(List<byte[]> payloads, double frequency,
                                    java.util.function.IntUnaryOperator decode) {
        List<Double> samples = new ArrayList<>();
        for (byte[] p : payloads) {
            for (byte b : p) {
                samples.add(decode.applyAsInt(b) / 32768.0);
            }
        }
        int n = Math.min(samples.size(), 8000);
        double w = 2 * Math.PI * frequency / 8000;
        double coeff = 2 * Math.cos(w);
        double s1 = 0;
        double s2 = 0;
        double total = 0;
        for (int i = samples.size() - n; i < samples.size(); i++) {
            double x = samples.get(i);
            total += x * x;
            double s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        double power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2 / n;
        return total == 0 ? 0 : power / total;
    }

    /** G.711 A-law to 16-bit linear. */
    private static int alaw(int b) {
        int a = (b & 0xff) ^ 0x55;
        int t = (a & 0x0f) << 4;
        int segment = (a & 0x70) >> 4;
        t = segment == 0 ? t + 8 : segment == 1 ? t + 0x108 : (t + 0x108) << (segment - 1);
        return (a & 0x80) != 0 ? t : -t;
    }

    /** G.711 μ-law to 16-bit linear. */
    private static int ulaw(int b) {
        int u = ~b & 0xff;
        int t = ((u & 0x0f) << 3) + 0x84;
        t <<= (u & 0x70) >> 4;
        return (u & 0x80) != 0 ? 0x84 - t : t - 0x84;
    }
}
