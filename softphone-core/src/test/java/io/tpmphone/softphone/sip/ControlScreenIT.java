package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.softphone.control.ControlServer;
import io.tpmphone.softphone.control.RingScreen;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ring screen over the control socket, as {@code tpmphone phone} relays it: a frame at once at the size asked
 * for, plain without escape sequences when not on a terminal, a new frame at a new size after the window-size
 * sequence, and {@code q} ends the screen (the connection closes); answer and decline for a call that does not ring
 * are refused with a reason.
 */
@Timeout(60)
class ControlScreenIT {
    @TempDir
    Path dir;
    private SipPhone phone;
    private ControlServer server;

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        TestHosts.freePort(), Duration.ofSeconds(15)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
        RingScreen screen = new RingScreen(phone, Optional.of("blue"), false, Clock.systemUTC());
        phone.answerWith(screen);
        server = ControlServer.start(phone, screen, dir.resolve("control.sock"));
    }

    @AfterEach
    void stop() throws Exception {
        server.close();
        phone.close();
    }

    /** Reads until {@code text} has arrived (and returns all read), within 10 s. */
    private static String readUntil(Reader in, String text) throws Exception {
        StringBuffer seen = new StringBuffer();
        // its own thread: the common pool has one thread on two cores, and a blocked read there starves others
        java.util.concurrent.ExecutorService reader = java.util.concurrent.Executors.newSingleThreadExecutor();
        CompletableFuture<String> f = CompletableFuture.supplyAsync(() -> {
            char[] b = new char[4096];
            try {
                for (int n; (n = in.read(b)) != -1; ) {
                    seen.append(b, 0, n);
                    if (seen.indexOf(text) >= 0) {
                        return seen.toString();
                    }
                }
                return seen + "<EOF>";
            } catch (java.io.IOException e) {
                return seen + "<" + e + ">";
            }
        }, reader);
        reader.shutdown();
        String got;
        try {
            got = f.get(10, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new AssertionError("no " + text + " in the screen within 10 s; it showed: " + seen, e);
        }
        assertTrue(got.contains(text), "expected " + text + " in the screen, got: " + got);
        return got;
    }

    @Test
    void theScreen_comesAtItsSize_plain_followsANewSize_andQEndsIt() throws Exception {
        try (ControlClient c = ControlClient.connect(dir.resolve("control.sock"), Duration.ofSeconds(5))) {
            c.screen(60, 20, false);
            String first = readUntil(c.frames(), "[q] quit");
            assertTrue(first.contains("No call.") && first.contains("«blue»"), "the idle screen: " + first);
            assertTrue(first.chars().noneMatch(ch -> ch == 0x1b), "plain when not on a terminal: " + first);
            String rule = first.lines().filter(l -> l.contains("──")).findFirst().orElseThrow();
            assertEquals(59, rule.strip().length() + 1, "the frame is 60 columns wide: [" + rule + "]");
            c.keys().write("\u001b[8;30;90t".getBytes(StandardCharsets.US_ASCII));
            c.keys().flush();
            String wider = readUntil(c.frames(), "─".repeat(88));
            assertTrue(wider.contains("─".repeat(88)), "a 90-column frame after the window grew");
            c.keys().write('q');
            c.keys().flush();
            String end = readUntil(c.frames(), "<EOF>");
            assertTrue(end.endsWith("<EOF>"), "q ends the screen: " + end);
        }
    }

    @Test
    void answeringACallThatDoesNotRing_isRefusedWithAReason() throws Exception {
        try (ControlClient c = ControlClient.connect(dir.resolve("control.sock"), Duration.ofSeconds(5))) {
            java.io.IOException e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                    () -> c.answer("no-such-call"));
            assertTrue(e.getMessage().contains("no call no-such-call"), e.getMessage());
        }
    }
}
