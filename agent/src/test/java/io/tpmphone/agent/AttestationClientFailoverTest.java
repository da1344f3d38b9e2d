package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.swtpm.testing.TestCertificateAuthority;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client over several real HTTPS servers on loopback (the JDK's server, certificates from a real openssl CA): it
 * starts where the host name says, moves on from a dead or failing instance and stays there, takes a 4xx as a verdict,
 * and trusts exactly the CA's certificates for the names in their SAN.
 */
@Timeout(60)
class AttestationClientFailoverTest {
    private static final Duration FAST = Duration.ofMillis(10);

    @TempDir
    static Path dir;
    private static TestCertificateAuthority ca;
    private static X509Certificate caCertificate;
    private static TestCertificateAuthority.Issued loopback;

    private final List<HttpsServer> started = new ArrayList<>();

    @BeforeAll
    static void makeCa() throws Exception {
        ca = TestCertificateAuthority.create(dir.resolve("ca"), "tpmphone test CA");
        caCertificate = certificates(ca.certificate()).get(0);
        loopback = ca.issue("127.0.0.1", "localhost");
    }

    @AfterEach
    void stopServers() {
        started.forEach(s -> s.stop(0));
    }

    /** A server answering every request with {@code status} and a JSON body naming {@code name}; counts requests. */
    private URI server(TestCertificateAuthority.Issued identity, String name, int status, AtomicInteger requests)
            throws Exception {
        HttpsServer s = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
        s.setHttpsConfigurator(new HttpsConfigurator(serverContext(identity)));
        s.createContext("/", exchange -> {
            requests.incrementAndGet();
            try (InputStream in = exchange.getRequestBody()) {
                in.readAllBytes();
            }
            byte[] body = ("{\"server\":\"" + name + "\",\"error\":\"e" + status + "\",\"message\":\"m\"}")
                    .getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(status, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        s.start();
        started.add(s);
        return URI.create("https://127.0.0.1:" + s.getAddress().getPort());
    }

    /** A key whose stable hash starts at index {@code wanted} of {@code n}. */
    private static String keyStartingAt(int wanted, int n) {
        for (int i = 0; ; i++) {
            if (AttestationClient.startIndex("host-" + i, n) == wanted) {
                return "host-" + i;
            }
        }
    }

    private static AttestationClient client(List<URI> servers, String key) throws Exception {
        return AttestationClient.builder().servers(servers).trustedCa(List.of(caCertificate)).preferenceKey(key)
                .timeout(Duration.ofSeconds(5)).backoff(FAST, FAST).build();
    }

    @Test
    void aDeadInstance_isPassedOver_andTheClientStaysWithTheOneThatAnswered() throws Exception {
        URI dead = URI.create("https://127.0.0.1:" + FreePorts.tcp());
        AtomicInteger liveRequests = new AtomicInteger();
        URI live = server(loopback, "live", 200, liveRequests);
        AttestationClient client = client(List.of(dead, live), keyStartingAt(0, 2));
        assertEquals(dead, client.server(), "the host name chose the first server");
        assertEquals("live", client.get("/v1/server", null).path("server").asText(), "answered by the live one");
        assertEquals(live, client.server(), "the client stays with the instance that answered");
        assertEquals("live", client.post("/v1/nonces", Map.of("a", 1), null).path("server").asText(),
                "the next request goes there directly");
        assertEquals(2, liveRequests.get(), "the live server saw both requests");
    }

    @Test
    void a5xx_movesOn_but_a4xxIsAVerdict_andNoOtherInstanceIsAsked() throws Exception {
        AtomicInteger failing = new AtomicInteger();
        AtomicInteger other = new AtomicInteger();
        URI unavailable = server(loopback, "unavailable", 503, failing);
        URI good = server(loopback, "good", 200, other);
        assertEquals("good", client(List.of(unavailable, good), keyStartingAt(0, 2)).get("/x", null)
                .path("server").asText(), "a 503 (storage_unavailable) is answered by the other instance");
        assertEquals(1, failing.get(), "the failing instance was asked once");

        AtomicInteger refusedRequests = new AtomicInteger();
        URI refusing = server(loopback, "refusing", 403, refusedRequests);
        int before = other.get();
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client(List.of(refusing, good), keyStartingAt(0, 2)).get("/x", null));
        assertEquals(403, e.status(), "the refusal is thrown as it came: " + e.getMessage());
        assertEquals(before, other.get(), "a refusal is a verdict: no other instance is asked");
        assertEquals(1, refusedRequests.get(), "asked once");
    }

    @Test
    void everyInstanceDown_failsAfterTwoRounds_namingEachServer() throws Exception {
        URI a = URI.create("https://127.0.0.1:" + FreePorts.tcp());
        URI b = URI.create("https://127.0.0.1:" + FreePorts.tcp());
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client(List.of(a, b), "h").get("/v1/server", null));
        assertEquals(0, e.status(), e.getMessage());
        assertTrue(e.getMessage().contains("4 attempts") && e.getMessage().contains(a.toString())
                && e.getMessage().contains(b.toString()), "says what was tried: " + e.getMessage());
    }

    @Test
    void aCertificateOfAnotherCa_orForAnotherName_isRefused() throws Exception {
        TestCertificateAuthority other = TestCertificateAuthority.create(dir.resolve("other-ca"), "another CA");
        URI foreign = server(other.issue("127.0.0.1"), "foreign", 200, new AtomicInteger());
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client(List.of(foreign), "h").get("/v1/server", null));
        assertEquals(0, e.status(), "no TLS connection to a server of another CA: " + e.getMessage());

        URI misnamed = server(ca.issue("attest.example"), "misnamed", 200, new AtomicInteger());
        AttestationClientException named = assertThrows(AttestationClientException.class,
                () -> client(List.of(misnamed), "h").get("/v1/server", null));
        assertEquals(0, named.status(), "our CA's certificate for another name is refused: " + named.getMessage());

        assertEquals("ok", client(List.of(server(loopback, "ok", 200, new AtomicInteger())), "h")
                .get("/v1/server", null).path("server").asText(), "our CA's certificate for 127.0.0.1 is accepted");
    }

    @Test
    void cyclesReuseOneConnection_thatTheClientDropsBeforeTheServerWould() throws Exception {
        java.util.Set<Integer> clientPorts = java.util.concurrent.ConcurrentHashMap.newKeySet();
        HttpsServer s = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
        s.setHttpsConfigurator(new HttpsConfigurator(serverContext(loopback)));
        s.createContext("/", exchange -> {
            clientPorts.add(exchange.getRemoteAddress().getPort());
            try (InputStream in = exchange.getRequestBody()) {
                in.readAllBytes();
            }
            byte[] body = "{\"server\":\"one\"}".getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        s.start();
        started.add(s);
        AttestationClient client = client(List.of(URI.create("https://127.0.0.1:" + s.getAddress().getPort())), "h");
        for (int i = 0; i < 3; i++) {
            client.post("/v1/nonces", Map.of("cycle", i), null);
        }
        assertEquals(1, clientPorts.size(), "three requests, one TLS connection (no handshake per cycle): "
                + clientPorts);
        // The JDK client reads its keep-alive once per JVM; loading AttestationClient set it (nobody set it before).
        assertEquals(Long.toString(AttestationClient.KEEP_ALIVE.toSeconds()),
                System.getProperty(AttestationClient.KEEP_ALIVE_PROPERTY), "the keep-alive the JDK client uses");
        assertEquals(AttestationClient.KEEP_ALIVE, AttestationClient.keepAliveConfigured());
        Duration server = io.tpmphone.server.AttestationServer.CONNECTION_IDLE_TIMEOUT;
        assertTrue(AttestationClient.KEEP_ALIVE.plusSeconds(10).compareTo(server) <= 0, "the client ("
                + AttestationClient.KEEP_ALIVE + ") drops an idle connection well before the server (" + server
                + ") does, so no request is written to a connection the server is closing");
        assertTrue(AttestationClient.KEEP_ALIVE.compareTo(Duration.ofSeconds(60)) > 0, "an agent's default 60 s"
                + " cycle finds its connection still open");
    }

    /** A server on loopback that reads each request and closes the connection without an answer; counts them. */
    private URI silentServer(AtomicInteger requests) throws Exception {
        HttpsServer s = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
        s.setHttpsConfigurator(new HttpsConfigurator(serverContext(loopback)));
        s.createContext("/", exchange -> {
            requests.incrementAndGet();
            try (InputStream in = exchange.getRequestBody()) {
                in.readAllBytes();
            }
            exchange.close(); // no status line: the client sent its request and gets no answer
        });
        s.start();
        started.add(s);
        return URI.create("https://127.0.0.1:" + s.getAddress().getPort());
    }

    @Test
    void aSanLessCertificateOfOurCa_isRefusedForTheNameInItsCommonName() throws Exception {
        URI sanLess = serverOn("localhost", ca.issueWithoutSubjectAltName("localhost"), "sanless");
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client(List.of(sanLess), "h").get("/v1/server", null));
        assertEquals(0, e.status(), "no TLS session with a SAN-less certificate: " + e.getMessage());
        assertTrue(causes(e).contains("no DNS name in its subjectAltName"), "the refusal says why: " + causes(e));

        URI named = serverOn("localhost", ca.issue("localhost"), "named");
        assertEquals("named", client(List.of(named), "h").get("/v1/server", null).path("server").asText(),
                "the same name in a DNS subjectAltName is accepted");

        URI ipInCommonName = server(ca.issue("localhost"), "dns-only", 200, new AtomicInteger());
        AttestationClientException ip = assertThrows(AttestationClientException.class,
                () -> client(List.of(ipInCommonName), "h").get("/v1/server", null));
        assertEquals(0, ip.status(), "https://127.0.0.1 with only a DNS name in the SAN is refused: "
                + ip.getMessage());
    }

    @Test
    void anEnrollmentSentToAnInstanceThatDied_isNotRepeatedAtAnother_butTheNextAttemptGoesThere() throws Exception {
        AtomicInteger silentRequests = new AtomicInteger();
        AtomicInteger otherRequests = new AtomicInteger();
        URI silent = silentServer(silentRequests);
        URI other = server(loopback, "other", 200, otherRequests);
        AttestationClient client = client(List.of(silent, other), keyStartingAt(0, 2));
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client.postOnce("/v1/enrollments", Map.of("enrollmentToken", "t"), null));
        assertEquals("no_answer", e.error(), "the request was sent and not answered: " + e.getMessage());
        assertEquals(1, silentRequests.get(), "the first instance got the enrollment once");
        assertEquals(0, otherRequests.get(), "the enrollment was not repeated at the other instance");
        assertEquals(other, client.server(), "the caller's next attempt goes to the other instance");

        AtomicInteger unavailableRequests = new AtomicInteger();
        URI unavailable = server(loopback, "unavailable", 503, unavailableRequests);
        AttestationClient second = client(List.of(unavailable, other), keyStartingAt(0, 2));
        AttestationClientException refused = assertThrows(AttestationClientException.class,
                () -> second.postOnce("/v1/enrollments/x/activation", Map.of("secret", "s"), null));
        assertEquals(503, refused.status(), "a 5xx after the request arrived is thrown: " + refused.getMessage());
        assertEquals(0, otherRequests.get(), "the activation was not repeated at the other instance");

        AtomicInteger repeatable = new AtomicInteger();
        URI silentToo = silentServer(repeatable);
        assertEquals("other", client(List.of(silentToo, other), keyStartingAt(0, 2)).post("/v1/nonces",
                Map.of("a", 1), null).path("server").asText(), "a repeatable request does go on to the other");
    }

    @Test
    void anEnrollmentGoesToTheNextInstance_whenTheFirstCouldNotBeConnectedTo() throws Exception {
        URI dead = URI.create("https://127.0.0.1:" + FreePorts.tcp());
        AtomicInteger liveRequests = new AtomicInteger();
        URI live = server(loopback, "live", 200, liveRequests);
        assertEquals("live", client(List.of(dead, live), keyStartingAt(0, 2)).postOnce("/v1/enrollments",
                Map.of("enrollmentToken", "t"), null).path("server").asText(),
                "nothing was sent to the dead instance, so the enrollment goes to the live one");
        assertEquals(1, liveRequests.get(), "the live instance got it once");
    }

    /** A server answering 200 on {@code host} (resolved), for its name in the URL. */
    private URI serverOn(String host, TestCertificateAuthority.Issued identity, String name) throws Exception {
        HttpsServer s = HttpsServer.create(new InetSocketAddress(InetAddress.getByName(host), 0), 16);
        s.setHttpsConfigurator(new HttpsConfigurator(serverContext(identity)));
        s.createContext("/", exchange -> {
            byte[] body = ("{\"server\":\"" + name + "\"}").getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        s.start();
        started.add(s);
        return URI.create("https://" + host + ":" + s.getAddress().getPort());
    }

    private static String causes(Throwable t) {
        StringBuilder b = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            b.append(c).append(" <- ");
        }
        return b.toString();
    }

    @Test
    void theServerCertificateIsRefusedAsACa_andPinningAndCaDoNotMix() throws Exception {
        X509Certificate leaf = certificates(loopback.certificate()).get(0);
        IllegalArgumentException notCa = assertThrows(IllegalArgumentException.class,
                () -> AttestationClient.builder().trustedCa(List.of(leaf)));
        assertTrue(notCa.getMessage().contains("not a CA certificate"), notCa.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AttestationClient.builder().pinnedCertificate(leaf)
                .trustedCa(List.of(caCertificate)));
        assertThrows(IllegalArgumentException.class, () -> AttestationClient.builder()
                .servers(List.of(URI.create("http://127.0.0.1:1"))));
    }

    @Test
    void theFirstServer_isAStableHashOfTheHostName_thatSpreadsHosts() {
        int[] counts = new int[3];
        for (int i = 0; i < 3000; i++) {
            int first = AttestationClient.startIndex("host-" + i, 3);
            assertEquals(first, AttestationClient.startIndex("host-" + i, 3), "stable for host-" + i);
            counts[first]++;
        }
        for (int c : counts) {
            assertTrue(c > 850 && c < 1150, "3000 hosts spread over 3 instances: " + java.util.Arrays.toString(counts));
        }
    }

    @Test
    void theBackoff_doublesUpToItsCap_andJittersTheUpperHalf() {
        Duration initial = Duration.ofMillis(200);
        Duration max = Duration.ofSeconds(5);
        assertEquals(100, AttestationClient.backoff(1, initial, max, 0.0).toMillis());
        assertEquals(200, AttestationClient.backoff(1, initial, max, 1.0).toMillis());
        assertEquals(400, AttestationClient.backoff(3, initial, max, 0.0).toMillis());
        assertEquals(800, AttestationClient.backoff(3, initial, max, 1.0).toMillis());
        assertEquals(2500, AttestationClient.backoff(30, initial, max, 0.0).toMillis());
        assertEquals(5000, AttestationClient.backoff(30, initial, max, 1.0).toMillis());
    }

    static List<X509Certificate> certificates(Path pem) throws Exception {
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(pem)) {
            for (java.security.cert.Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
        }
        return out;
    }

    static PrivateKey privateKey(Path pem) throws Exception {
        String text = Files.readString(pem, StandardCharsets.US_ASCII).replaceAll("-----[A-Z ]+-----", "")
                .replaceAll("\\s", "");
        return KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder()
                .decode(text)));
    }

    private static SSLContext serverContext(TestCertificateAuthority.Issued identity) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        char[] password = "test".toCharArray();
        ks.setKeyEntry("server", privateKey(identity.key()), password,
                certificates(identity.chain()).toArray(new X509Certificate[0]));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), null, null);
        return context;
    }
}
