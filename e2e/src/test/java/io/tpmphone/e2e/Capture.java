package io.tpmphone.e2e;

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
 * A packet capture on loopback with tshark (installed by the test prerequisites; a missing tshark fails the test),
 * and what the wire shows: the RTP payloads sent to a port, and how much of a tone they carry if decoded as PCMU.
 */
final class Capture {
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
    static Capture start(Path file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("tshark", "-i", "lo", "-f", "udp", "-w", file.toString(), "-P", "-l")
                .redirectErrorStream(true).start();
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

    /** Stops the capture and returns the RTP payloads of the packets sent to {@code port}. */
    List<byte[]> stopAndReadRtpPayloads(int port) throws IOException, InterruptedException {
        tshark.destroy();
        if (!tshark.waitFor(10, TimeUnit.SECONDS)) {
            tshark.destroyForcibly();
        }
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

    /** What a capture saw on one media port: DTLS records, and the payloads of RTP (or SRTP) packets. */
    record Media(int dtls, List<byte[]> rtpPayloads) {
        @Override
        public String toString() {
            return dtls + " DTLS datagrams, " + rtpPayloads.size() + " RTP/SRTP packets";
        }
    }

    /**
     * Stops the capture and sorts the UDP datagrams sent to {@code port} by their first byte (RFC 7983 §7): DTLS
     * (20..63) counted, RTP/SRTP (128..191) kept as the payload after its header — without the dissectors' guesses,
     * which take a port carrying DTLS for DTLS only.
     */
    Media stopAndReadMedia(int port) throws IOException, InterruptedException {
        tshark.destroy();
        if (!tshark.waitFor(10, TimeUnit.SECONDS)) {
            tshark.destroyForcibly();
        }
        Process read = new ProcessBuilder("tshark", "-r", file.toString(), "-Y", "udp.dstport==" + port, "-T",
                "fields", "-e", "udp.payload").start();
        int dtls = 0;
        List<byte[]> rtp = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(read.getInputStream(),
                StandardCharsets.US_ASCII))) {
            for (String line; (line = r.readLine()) != null; ) {
                String hex = line.replace(":", "").trim();
                if (hex.isEmpty()) {
                    continue;
                }
                byte[] d = HexFormat.of().parseHex(hex);
                int first = d[0] & 0xff;
                if (first >= 20 && first <= 63) {
                    dtls++;
                } else if (first >= 128 && first <= 191 && d.length > 12) {
                    int pt = d[1] & 0x7f;
                    if (pt >= 64 && pt <= 95) {
                        continue; // RTCP multiplexed on the port (RFC 5761 §4)
                    }
                    int header = 12 + 4 * (first & 0x0f);
                    if (d.length > header) {
                        rtp.add(java.util.Arrays.copyOfRange(d, header, d.length));
                    }
                }
            }
        }
        if (!read.waitFor(30, TimeUnit.SECONDS) || read.exitValue() != 0) {
            throw new IOException("tshark could not read " + file);
        }
        return new Media(dtls, rtp);
    }

    /** The share of energy at {@code frequency} if the payloads are decoded as PCMU (near 1 for the clear tone). */
    static double toneShareIfPcmu(List<byte[]> payloads, double frequency) {
        List<Double> samples = new ArrayList<>();
        for (byte[] p : payloads) {
            for (byte b : p) {
                samples.add(ulaw(b) / 32768.0);
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

    /** G.711 μ-law to 16-bit linear. */
    private static int ulaw(byte b) {
        int u = ~b & 0xff;
        int t = ((u & 0x0f) << 3) + 0x84;
        t <<= (u & 0x70) >> 4;
        return (u & 0x80) != 0 ? 0x84 - t : t - 0x84;
    }
}
