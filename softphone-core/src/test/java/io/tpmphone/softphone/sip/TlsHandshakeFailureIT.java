package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.softphone.control.ControlServer;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.stream.StreamSupport;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * A standard phone whose TLS handshake with ours fails (issue 13, item 5): one that offers only TLS 1.2 with CBC
 * suites (TLS 1.2 itself is served since issue 14, with AEAD suites only), and one that does not trust our device
 * certificate. Each attempt was an ERROR line from JAIN-SIP ("A problem occured while
 * Accepting connection", a 20-line stack trace before issue 12) and the user saw nothing. Now: one line naming the peer
 * and the reason in words, and the attempt in the call list as a refused incoming call — what the user interface
 * (the control channel) shows. JSSE is the standard phone's TLS.
 */
class TlsHandshakeFailureIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private final Logger phoneLog = (Logger) LoggerFactory.getLogger(SipPhone.class);
    private final Logger sipLog = (Logger) LoggerFactory.getLogger("gov.nist.javax.sip");
    private final LogLines lines = new LogLines();
    private Level phoneLevel;
    private Level sipLevel;
    private SipPhone phone;
    private ControlServer control;

    @TempDir
    Path dir;

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0, 0,
                        Duration.ofSeconds(15)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
        control = ControlServer.start(phone, dir.resolve("control.sock"));
        phoneLevel = phoneLog.getLevel();
        sipLevel = sipLog.getLevel();
        phoneLog.setLevel(Level.INFO);
        sipLog.setLevel(Level.INFO);
        lines.start();
        phoneLog.addAppender(lines);
        sipLog.addAppender(lines);
    }

    @AfterEach
    void stop() throws Exception {
        phoneLog.detachAppender(lines);
        sipLog.detachAppender(lines);
        phoneLog.setLevel(phoneLevel);
        sipLog.setLevel(sipLevel);
        control.close();
        phone.close();
    }

    @Test
    @Timeout(60)
    void aTls12PhoneWithOnlyCbcSuites_getsOneLineNamingItAndTheReason_andIsShownAsARefusedCall() throws Exception {
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, new TrustManager[] {new TrustingEverything()}, null);
        String peer = connect(tls, "TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384");

        JsonNode shown = refusedCallShown(peer);
        assertTrue(shown.path("reason").asText().contains("TLS handshake failed: the peer and this phone found no TLS"
                + " parameters both accept"), "the user sees why: " + shown);
        ILoggingEvent line = theOneLineAbout(peer);
        assertEquals(Level.WARN, line.getLevel(), line.getFormattedMessage());
        assertTrue(line.getFormattedMessage().contains("TLS handshake with " + peer + " failed: the peer and this"
                + " phone found no TLS parameters both accept: a cipher suite, key exchange group or signature"
                + " algorithm (handshake_failure(40))"), line.getFormattedMessage());
        assertEquals(null, line.getThrowableProxy(), "no stack trace");
    }

    @Test
    @Timeout(60)
    void aPhoneThatDoesNotTrustOurCertificate_isShownWhy() throws Exception {
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, null, null); // the JVM's CAs: our device CA is not among them
        String peer = connect(tls, "TLSv1.3");

        JsonNode shown = refusedCallShown(peer);
        assertTrue(shown.path("reason").asText().contains("the peer refused this phone's device certificate"),
                "the user sees why: " + shown);
        ILoggingEvent line = theOneLineAbout(peer);
        assertEquals(Level.WARN, line.getLevel(), line.getFormattedMessage());
        assertTrue(line.getFormattedMessage().contains("it would have to trust the device CA"),
                line.getFormattedMessage());
    }

    /** A JSSE client handshakes with the phone over {@code protocol} and fails; its address as the phone sees it. */
    private String connect(SSLContext tls, String protocol, String... suites) throws Exception {
        try (SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket(LOOPBACK, phone.config().tlsPort())) {
            s.setEnabledProtocols(new String[] {protocol});
            if (suites.length > 0) {
                s.setEnabledCipherSuites(suites);
            }
            s.setSoTimeout((int) WAIT.toMillis());
            String us = s.getLocalAddress().getHostAddress() + ":" + s.getLocalPort();
            assertThrows(SSLException.class, s::startHandshake, "the handshake fails");
            return us;
        }
    }

    /** The attempt of {@code peer} as the control channel shows it: a refused incoming call. */
    private JsonNode refusedCallShown(String peer) throws Exception {
        try (ControlClient client = ControlClient.connect(control.path(), WAIT)) {
            Optional<JsonNode> call = Await.until("the attempt from " + peer + " in the call list", WAIT,
                    () -> StreamSupport.stream(client.calls().spliterator(), false)
                            .filter(c -> c.path("peerUri").asText().equals(peer)).findFirst(), Optional::isPresent);
            JsonNode c = call.orElseThrow();
            assertEquals("IN", c.path("direction").asText(), c.toString());
            assertEquals("REFUSED", c.path("state").asText(), c.toString());
            return c;
        }
    }

    /** The one line logged at INFO or above, by the phone or JAIN-SIP, that names {@code peer}. */
    private ILoggingEvent theOneLineAbout(String peer) {
        String port = peer.substring(peer.lastIndexOf(':'));
        List<ILoggingEvent> about = Await.until("the line about " + peer, WAIT, () -> lines.events().stream()
                .filter(e -> e.getLevel().isGreaterOrEqual(Level.INFO))
                .filter(e -> e.getFormattedMessage().contains(port)).toList(), l -> !l.isEmpty());
        List<ILoggingEvent> handshakeLines = lines.events().stream()
                .filter(e -> e.getLevel().isGreaterOrEqual(Level.INFO))
                .filter(e -> e.getFormattedMessage().toLowerCase().contains("handshake")
                        || e.getFormattedMessage().contains("Accepting connection")).toList();
        assertEquals(1, about.size(), "lines naming " + peer + ": " + text(about));
        assertEquals(about, handshakeLines, "every line about the handshake: " + text(handshakeLines));
        return about.get(0);
    }

    private static List<String> text(List<ILoggingEvent> events) {
        return events.stream().map(e -> e.getLevel() + " " + e.getLoggerName() + " " + e.getFormattedMessage())
                .toList();
    }

    /** A standard phone that checks no certificate (many do not): only the protocol version fails. */
    private static final class TrustingEverything implements X509TrustManager {
        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) {
            // not a server
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) {
            // trusts any server
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }
}
