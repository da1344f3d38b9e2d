package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.internal.BrokerClient;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.Evidence;
import io.tpmphone.tls.HostIdentity;
import io.tpmphone.tls.PassportVerifier;
import java.io.IOException;
import java.io.InputStream;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The 49 RFC 4475 torture messages (src/test/resources/rfc4475, copied from the project's shared corpora with their
 * provenance note), each sent to a running phone over UDP and over TCP: each one gets a response or is dropped, never
 * a 2xx for an invalid message, never a 5xx, and the phone still answers an OPTIONS right after every one.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TortureMessagesIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final Pattern STATUS = Pattern.compile("^SIP/2\\.0 (\\d{3}) ");
    /** RFC 4475 §3.1.2: invalid messages (must be rejected or dropped). */
    private static final List<String> INVALID = List.of("badinv01", "clerr", "ncl", "scalar02", "scalarlg",
            "quotbal", "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri", "baddate", "regbadct", "badaspec",
            "baddn", "badvers", "mismatch01", "mismatch02", "bigcode");
    private static final List<String> ALL = List.of("wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp",
            "longreq", "dblreq", "semiuri", "transports", "mpart01", "unreason", "noreason", "badinv01", "clerr",
            "ncl", "scalar02", "scalarlg", "quotbal", "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri",
            "baddate", "regbadct", "badaspec", "baddn", "badvers", "mismatch01", "mismatch02", "bigcode",
            "badbranch", "insuf", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "multi01", "mcl01",
            "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543");

    private SipPhone phone;
    private int udpPort;
    private int tcpPort;

    @BeforeAll
    void start() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(256);
        HostIdentity none = new HostIdentity() {
            @Override
            public List<X509Certificate> certificateChain() throws IOException {
                throw new IOException("no TLS in this test");
            }

            @Override
            public byte[] sign(byte[] digest) throws IOException {
                throw new IOException("no TLS in this test");
            }

            @Override
            public Evidence evidence(byte[] binder) throws IOException {
                throw new IOException("no TLS in this test");
            }
        };
        PassportVerifier verifier = new PassportVerifier(g.generateKeyPair().getPublic(),
                List.of(selfSigned()), Clock.systemUTC());
        SipPhone.Keys keys = new SipPhone.Keys() {
            @Override
            public BrokerClient.SrtpKeyMaterial srtpKey(String suite, String callId) {
                return BrokerClient.SrtpKeyMaterial.of(new byte[16], new byte[14]);
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) {
                // every offer is new here
            }
        };
        udpPort = FreePorts.udp();
        tcpPort = FreePorts.tcp();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, FreePorts.tcp(), tcpPort, udpPort,
                        Duration.ofSeconds(5)), AttestedTlsConfig.of(none, verifier, Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject"), keys, new SipPhone.Listener() { }, Clock.systemUTC());
    }

    private static X509Certificate selfSigned() throws Exception {
        // any CA will do: no TLS connection is made in this test
        java.security.KeyStore ks = java.security.KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(256);
        var pair = g.generateKeyPair();
        var name = new org.bouncycastle.asn1.x500.X500Name("CN=test CA");
        var now = java.time.Instant.now();
        var builder = new org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder(name, java.math.BigInteger.ONE,
                java.util.Date.from(now), java.util.Date.from(now.plusSeconds(3600)), name, pair.getPublic());
        return new org.bouncycastle.cert.jcajce.JcaX509CertificateConverter().getCertificate(builder.build(
                new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder("SHA256withECDSA")
                        .build(pair.getPrivate())));
    }

    @AfterAll
    void stop() {
        if (phone != null) {
            phone.close();
        }
    }

    private static byte[] message(String name) throws IOException {
        try (InputStream in = TortureMessagesIT.class.getResourceAsStream("/rfc4475/" + name + ".dat")) {
            if (in == null) {
                throw new IOException("missing test resource rfc4475/" + name + ".dat");
            }
            return in.readAllBytes();
        }
    }

    /** Sends over UDP; the status lines of whatever comes back within {@code wait} (until a 200 if asked). */
    private List<Integer> udp(byte[] datagram, Duration wait) throws IOException {
        return udp(datagram, wait, false);
    }

    private List<Integer> udp(byte[] datagram, Duration wait, boolean untilOk) throws IOException {
        List<Integer> statuses = new ArrayList<>();
        try (DatagramSocket s = new DatagramSocket(0, LOOPBACK)) {
            s.setSoTimeout((int) wait.toMillis());
            s.send(new DatagramPacket(datagram, datagram.length, new InetSocketAddress(LOOPBACK, udpPort)));
            byte[] buf = new byte[65_536];
            while (true) {
                DatagramPacket p = new DatagramPacket(buf, buf.length);
                try {
                    s.receive(p);
                } catch (SocketTimeoutException e) {
                    return statuses;
                }
                Matcher m = STATUS.matcher(new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1));
                if (m.find()) {
                    statuses.add(Integer.parseInt(m.group(1)));
                    if (untilOk && statuses.contains(200)) {
                        return statuses;
                    }
                }
            }
        }
    }

    private List<Integer> tcp(byte[] bytes, Duration wait) throws IOException {
        List<Integer> statuses = new ArrayList<>();
        try (Socket s = new Socket(LOOPBACK, tcpPort)) {
            s.setSoTimeout((int) wait.toMillis());
            s.getOutputStream().write(bytes);
            s.getOutputStream().flush();
            byte[] buf = new byte[65_536];
            StringBuilder got = new StringBuilder();
            try {
                for (int n; (n = s.getInputStream().read(buf)) > 0; ) {
                    got.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                }
            } catch (SocketTimeoutException | java.net.SocketException e) {
                // done waiting, or the phone closed the connection
            }
            Matcher m = Pattern.compile("(?m)^SIP/2\\.0 (\\d{3}) ").matcher(got);
            while (m.find()) {
                statuses.add(Integer.parseInt(m.group(1)));
            }
        }
        return statuses;
    }

    private void assertAlive(String after) throws IOException {
        String options = "OPTIONS sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK" + Long.toHexString(System.nanoTime()) + "\r\n"
                + "Max-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\n"
                + "Call-ID: alive-" + System.nanoTime() + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        List<Integer> r = udp(options.getBytes(StandardCharsets.US_ASCII), Duration.ofSeconds(3), true);
        assertTrue(r.contains(200), "the phone stopped answering after " + after + ": " + r);
    }

    @Test
    void everyTortureMessage_overUdpAndTcp_getsAResponseOrIsDropped_andThePhoneSurvives() throws Exception {
        Map<String, List<Integer>> seen = new LinkedHashMap<>();
        for (String name : ALL) {
            byte[] m = message(name);
            List<Integer> viaUdp = udp(m, Duration.ofMillis(200));
            List<Integer> viaTcp = tcp(m, Duration.ofMillis(300));
            seen.put(name + "/udp", viaUdp);
            seen.put(name + "/tcp", viaTcp);
            for (int status : concat(viaUdp, viaTcp)) {
                assertFalse(status >= 500 && status != 505 && status != 501 && status != 513,
                        name + " made the phone fail: " + status);
                if (INVALID.contains(name)) {
                    assertFalse(status >= 200 && status < 300, name + " is invalid but got " + status);
                }
            }
            assertAlive(name);
        }
        assertEquals(ALL.size() * 2, seen.size());
        // Over UDP, responses to parseable requests go to each message's Via (documentation addresses): what we see
        // are the 400s the stack sends back for unparseable ones. Every invalid message got a 400 or nothing.
        for (String name : INVALID) {
            for (String t : List.of("/udp", "/tcp")) {
                assertTrue(seen.get(name + t).stream().allMatch(x -> x == 400), name + t + ": " + seen.get(name + t));
            }
        }
        assertTrue(seen.values().stream().filter(l -> l.contains(400)).count() >= 8, "invalid messages get 400s: "
                + seen);
    }

    @Test
    void theValidTortuousInvite_isParsed_andRefusedByPolicyWith403() throws Exception {
        // wsinv with its Via pointed at us (the rest byte-exact), so the response is observable.
        try (DatagramSocket s = new DatagramSocket(0, LOOPBACK)) {
            String m = new String(message("wsinv"), StandardCharsets.ISO_8859_1)
                    .replace("192.0.2.2", "127.0.0.1:" + s.getLocalPort());
            byte[] b = m.getBytes(StandardCharsets.ISO_8859_1);
            s.setSoTimeout(3000);
            s.send(new DatagramPacket(b, b.length, new InetSocketAddress(LOOPBACK, udpPort)));
            List<Integer> statuses = new ArrayList<>();
            byte[] buf = new byte[65_536];
            try {
                while (!statuses.contains(403)) {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    s.receive(p);
                    Matcher st = STATUS.matcher(new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1));
                    if (st.find()) {
                        statuses.add(Integer.parseInt(st.group(1)));
                    }
                }
            } catch (SocketTimeoutException e) {
                // fall through to the assertion
            }
            assertTrue(statuses.contains(403), "an unattested caller is refused by the MEASURED policy: " + statuses);
        }
    }

    private static List<Integer> concat(List<Integer> a, List<Integer> b) {
        List<Integer> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }
}
