package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Deployed phones and PBXs that speak SIP over TLS 1.2 only (Debian's linphone on mbedTLS 2.28 among them) are served
 * with ECDHE-ECDSA and an AEAD cipher and rated UNATTESTED; older protocols and non-AEAD suites are still refused.
 * The client is the JDK's own TLS stack (SunJSSE), a second implementation.
 */
@Timeout(60)
class Tls12PeersTest {
    private static SoftwareHosts hosts;
    private static SoftwareHosts.Host alice;

    @BeforeAll
    static void hosts() throws Exception {
        hosts = new SoftwareHosts(Clock.systemUTC());
        alice = hosts.host("alice", IntegrityLevel.MEASURED);
    }

    /** Accepts one connection on an attested server socket and runs its handshake. */
    private static CompletableFuture<AttestedSslSocket> serveOne(ServerSocket raw) throws Exception {
        AttestedSslServerSocket server = new AttestedSslServerSocket(raw, () -> new AttestedTlsServer(
                new JcaTlsCryptoProvider().create(new SecureRandom()),
                AttestedTlsConfig.of(alice, hosts.verifier(), Clock.systemUTC())));
        return CompletableFuture.supplyAsync(() -> {
            try {
                AttestedSslSocket s = (AttestedSslSocket) server.accept();
                s.startHandshake();
                return s;
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    private static SSLSocket client(int port, String protocol, String... suites) throws Exception {
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, new TrustManager[] {new X509TrustManager() {
            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType) {
                // a standard phone that trusts the device CA; the test looks at what was negotiated
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return new X509Certificate[0];
            }
        }}, new SecureRandom());
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(InetAddress.getLoopbackAddress(), port);
        s.setEnabledProtocols(new String[] {protocol});
        if (suites.length > 0) {
            s.setEnabledCipherSuites(suites);
        }
        s.setSoTimeout(10_000);
        return s;
    }

    @Test
    void aTls12OnlyPhone_isServedWithAnAeadSuite_andIsUnattested() throws Exception {
        try (ServerSocket raw = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            CompletableFuture<AttestedSslSocket> accepted = serveOne(raw);
            try (SSLSocket c = client(raw.getLocalPort(), "TLSv1.2")) {
                c.startHandshake();
                assertEquals("TLSv1.2", c.getSession().getProtocol(), "the client negotiated");
                String suite = c.getSession().getCipherSuite();
                assertTrue(suite.startsWith("TLS_ECDHE_ECDSA_WITH_") && (suite.contains("GCM")
                        || suite.contains("CHACHA20")), "an ECDHE-ECDSA AEAD suite: " + suite);
                try (AttestedSslSocket s = accepted.get(20, TimeUnit.SECONDS)) {
                    assertEquals("TLSv1.2", s.getSession().getProtocol(), "the server's session");
                    assertEquals(suite, s.getSession().getCipherSuite(), "both sides name the same suite");
                    PeerAttestation p = s.peerAttestation().orElseThrow();
                    assertEquals(IntegrityLevel.UNATTESTED, p.level(), p.display());
                    assertTrue(p.reason().contains("TLS 1.2"), p.reason());
                }
            }
        }
    }

    @Test
    void tls11_isRefused() throws Exception {
        try (ServerSocket raw = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            CompletableFuture<AttestedSslSocket> accepted = serveOne(raw);
            try (SSLSocket c = client(raw.getLocalPort(), "TLSv1.1")) {
                assertThrows(SSLException.class, c::startHandshake, "TLS 1.1 must not be negotiated");
            }
            assertThrows(Exception.class, () -> accepted.get(20, TimeUnit.SECONDS), "the server refused it too");
        }
    }

    @Test
    void aTls12PhoneOfferingOnlyCbcSuites_isRefused() throws Exception {
        try (ServerSocket raw = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            CompletableFuture<AttestedSslSocket> accepted = serveOne(raw);
            try (SSLSocket c = client(raw.getLocalPort(), "TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
                    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384")) {
                assertThrows(SSLException.class, c::startHandshake, "a CBC suite must not be negotiated");
            }
            assertThrows(Exception.class, () -> accepted.get(20, TimeUnit.SECONDS), "the server refused it too");
        }
    }

    @Test
    void aTls13Client_stillGetsTls13() throws Exception {
        try (ServerSocket raw = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            CompletableFuture<AttestedSslSocket> accepted = serveOne(raw);
            try (SSLSocket c = client(raw.getLocalPort(), "TLSv1.3")) {
                c.startHandshake();
                assertEquals("TLSv1.3", c.getSession().getProtocol());
                try (AttestedSslSocket s = accepted.get(20, TimeUnit.SECONDS)) {
                    assertEquals("TLSv1.3", s.getSession().getProtocol());
                    PeerAttestation p = s.peerAttestation().orElseThrow();
                    assertEquals(IntegrityLevel.UNATTESTED, p.level(), p.display());
                    assertTrue(p.reason().contains("no attestation_request") || p.reason().contains("no certificate"),
                            p.reason());
                }
            }
        }
    }
}
