package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.SocketAddress;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bouncycastle.tls.DatagramTransport;
import org.bouncycastle.tls.UDPTransport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our DTLS-SRTP against a second implementation, OpenSSL's {@code s_server} and {@code s_client} (a standard peer: no
 * attestation), in both roles over real UDP: the handshake completes with {@code use_srtp}, the peer is UNATTESTED,
 * and the SRTP keying material both sides export is the same bytes — so the keys are right, not merely agreed between
 * two copies of our code. A wrong fingerprint still ends the handshake.
 */
@Timeout(120)
class DtlsSrtpOpenSslIT {
    private static final Pattern KEYING = Pattern.compile("Keying material: ([0-9A-Fa-f]+)");
    private static final Pattern SRTP = Pattern.compile("SRTP Extension negotiated, profile=(\\S+)");
    private static SoftwareHosts hosts;
    private static SoftwareHosts.Host alice;

    @TempDir
    static Path dir;
    private static Path cert;
    private static Path key;
    private static DtlsFingerprint opensslFingerprint;

    @BeforeAll
    static void setUp() throws Exception {
        hosts = new SoftwareHosts(Clock.systemUTC());
        alice = hosts.host("alice", IntegrityLevel.MEASURED);
        cert = dir.resolve("openssl.crt");
        key = dir.resolve("openssl.key");
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                "/CN=openssl-peer", "-days", "2", "-keyout", key.toString(), "-out", cert.toString());
        X509Certificate c;
        try (InputStream in = Files.newInputStream(cert)) {
            c = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        opensslFingerprint = DtlsFingerprint.sha256(c.getEncoded());
    }

    private static DtlsSrtpConfig ours(DtlsFingerprint expected) {
        return DtlsSrtpConfig.of(AttestedTlsConfig.of(alice, hosts.verifier(), Clock.systemUTC()), expected)
                .withTimeouts(Duration.ofSeconds(15), Duration.ofSeconds(2));
    }

    @Test
    void asClient_againstOpenSslServer_theKeysAreOpenSslsKeys() throws Exception {
        int port;
        try (DatagramSocket probe = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            port = probe.getLocalPort();
        }
        Process server = openssl("s_server", "-dtls1_2", "-accept", "127.0.0.1:" + port, "-cert", cert.toString(),
                "-key", key.toString(), "-use_srtp", "SRTP_AES128_CM_SHA1_80", "-keymatexport",
                "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60", "-Verify", "1");
        try {
            Output out = new Output(server);
            out.await(Pattern.compile("ACCEPT"));
            try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
                s.connect(InetAddress.getLoopbackAddress(), port);
                try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(new UDPTransport(s, 1200), true,
                        ours(opensslFingerprint))) {
                    assertEquals(IntegrityLevel.UNATTESTED, a.peer().level(), a.peer().display());
                    SrtpKeys k = a.accept(a.peer().level());
                    byte[] material = HexFormat.of().parseHex(out.await(KEYING).group(1));
                    assertEquals(60, material.length, "OpenSSL exported " + material.length + " bytes");
                    assertEquals("SRTP_AES128_CM_SHA1_80", out.await(SRTP).group(1), "OpenSSL's profile");
                    assertArrayEquals(Arrays.copyOfRange(material, 0, 16), k.localKey(), "client_write_key");
                    assertArrayEquals(Arrays.copyOfRange(material, 16, 32), k.remoteKey(),
                            "server_write_key");
                    assertArrayEquals(Arrays.copyOfRange(material, 32, 46), k.localSalt(),
                            "client_write_salt");
                    assertArrayEquals(Arrays.copyOfRange(material, 46, 60), k.remoteSalt(),
                            "server_write_salt");
                }
            }
        } finally {
            server.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void asServer_againstOpenSslClient_theKeysAreOpenSslsKeys() throws Exception {
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            Process client = openssl("s_client", "-dtls1_2", "-connect", "127.0.0.1:" + s.getLocalPort(), "-cert",
                    cert.toString(), "-key", key.toString(), "-use_srtp", "SRTP_AES128_CM_SHA1_80", "-keymatexport",
                    "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60");
            try {
                Output out = new Output(client);
                try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(new FirstPeerTransport(s, 1200), false,
                        ours(opensslFingerprint))) {
                    assertEquals(IntegrityLevel.UNATTESTED, a.peer().level(), a.peer().display());
                    SrtpKeys k = a.accept(a.peer().level());
                    byte[] material = HexFormat.of().parseHex(out.await(KEYING).group(1));
                    assertArrayEquals(Arrays.copyOfRange(material, 16, 32), k.localKey(), "server_write_key");
                    assertArrayEquals(Arrays.copyOfRange(material, 0, 16), k.remoteKey(), "client_write_key");
                    assertArrayEquals(Arrays.copyOfRange(material, 46, 60), k.localSalt(),
                            "server_write_salt");
                    assertArrayEquals(Arrays.copyOfRange(material, 32, 46), k.remoteSalt(),
                            "client_write_salt");
                }
            } finally {
                client.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * A standard phone whose DTLS certificate is RSA (baresip 1.0's dtls_srtp makes an RSA self-signed one) connects
     * to us as client: its certificate and CertificateVerify are accepted (our own certificate stays ECDSA).
     */
    @Test
    void asServer_againstAClientWithAnRsaCertificate_theHandshakeCompletes() throws Exception {
        Path rsaCert = dir.resolve("rsa.crt");
        Path rsaKey = dir.resolve("rsa.key");
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=rsa-peer", "-days", "2",
                "-keyout", rsaKey.toString(), "-out", rsaCert.toString());
        X509Certificate c;
        try (InputStream in = Files.newInputStream(rsaCert)) {
            c = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            Process client = openssl("s_client", "-dtls1_2", "-connect", "127.0.0.1:" + s.getLocalPort(), "-cert",
                    rsaCert.toString(), "-key", rsaKey.toString(), "-use_srtp", "SRTP_AES128_CM_SHA1_80",
                    "-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60");
            try {
                Output out = new Output(client);
                try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(new FirstPeerTransport(s, 1200), false,
                        ours(DtlsFingerprint.sha256(c.getEncoded())))) {
                    assertEquals(IntegrityLevel.UNATTESTED, a.peer().level(), a.peer().display());
                    byte[] material = HexFormat.of().parseHex(out.await(KEYING).group(1));
                    assertArrayEquals(Arrays.copyOfRange(material, 0, 16), a.accept(a.peer().level()).remoteKey(),
                            "client_write_key");
                }
            } finally {
                client.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void anOpenSslServerWhoseCertificateIsNotTheFingerprint_isRefused() throws Exception {
        int port;
        try (DatagramSocket probe = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            port = probe.getLocalPort();
        }
        Process server = openssl("s_server", "-dtls1_2", "-accept", "127.0.0.1:" + port, "-cert", cert.toString(),
                "-key", key.toString(), "-use_srtp", "SRTP_AES128_CM_SHA1_80", "-Verify", "1");
        try {
            new Output(server).await(Pattern.compile("ACCEPT"));
            try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
                s.connect(InetAddress.getLoopbackAddress(), port);
                DtlsSrtpException e = assertThrows(DtlsSrtpException.class, () -> new DtlsSrtpEndpoint().establish(
                        new UDPTransport(s, 1200), true, ours(alice.fingerprint())));
                assertEquals(DtlsSrtpException.Reason.FINGERPRINT_MISMATCH, e.reason(), e.getMessage());
            }
        } finally {
            server.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    /** A server-side transport on an unconnected socket: it answers whoever sent the first datagram. */
    private static final class FirstPeerTransport implements DatagramTransport {
        private final DatagramSocket socket;
        private final int mtu;
        private volatile SocketAddress peer;

        FirstPeerTransport(DatagramSocket socket, int mtu) {
            this.socket = socket;
            this.mtu = mtu;
        }

        @Override
        public int getReceiveLimit() {
            return mtu - 28;
        }

        @Override
        public int getSendLimit() {
            return mtu - 28;
        }

        @Override
        public int receive(byte[] buf, int off, int len, int waitMillis) throws IOException {
            socket.setSoTimeout(Math.max(1, waitMillis));
            DatagramPacket p = new DatagramPacket(buf, off, len);
            try {
                while (true) {
                    socket.receive(p);
                    if (peer == null) {
                        peer = p.getSocketAddress();
                    }
                    if (peer.equals(p.getSocketAddress())) {
                        return p.getLength();
                    }
                }
            } catch (SocketTimeoutException e) {
                return -1;
            }
        }

        @Override
        public void send(byte[] buf, int off, int len) throws IOException {
            SocketAddress to = peer;
            if (to == null) {
                throw new IOException("no peer yet");
            }
            socket.send(new DatagramPacket(buf, off, len, to));
        }

        @Override
        public void close() {
            // the test closes the socket
        }
    }

    /** Collects a process's output and lets a test await a line. */
    private static final class Output {
        private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        private final List<String> seen = new ArrayList<>();

        Output(Process p) {
            CompletableFuture.runAsync(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String l; (l = r.readLine()) != null; ) {
                        lines.add(l);
                    }
                } catch (IOException e) {
                    lines.add("(output ended: " + e + ")");
                }
            });
        }

        Matcher await(Pattern pattern) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            for (String l : seen) {
                Matcher m = pattern.matcher(l);
                if (m.find()) {
                    return m;
                }
            }
            while (System.nanoTime() < deadline) {
                String l = lines.poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
                if (l == null) {
                    break;
                }
                seen.add(l);
                Matcher m = pattern.matcher(l);
                if (m.find()) {
                    return m;
                }
            }
            assertNotNull(null, "openssl never printed " + pattern + "; it printed: " + seen);
            throw new AssertionError("unreachable");
        }
    }

    private static Process openssl(String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add("openssl");
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    private static void run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0, String.join(" ", cmd) + ": " + out);
    }
}
