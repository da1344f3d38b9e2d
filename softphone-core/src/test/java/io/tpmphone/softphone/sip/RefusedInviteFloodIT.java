package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.ByteArrayOutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 12's review of the SIP bounds, finding 1: INVITEs refused over TLS or TCP (by the call policy, or beyond the
 * call limits) each left a JAIN-SIP server transaction waiting 32 s for an ACK (Timer H), so one peer sending about a
 * thousand of them filled JAIN-SIP's transaction table (1,000), and JAIN-SIP dropped every INVITE after that, a real
 * caller's included. Refusals made before any dialog exists must hold nothing.
 */
class RefusedInviteFloodIT {
    private static final int TLS_FLOOD = 1_200;
    private static final int TCP_FLOOD = 300;
    /** What JAIN-SIP may hold after the flood: nothing per refused INVITE; a few for whatever else runs. */
    private static final int MAX_TRANSACTIONS_AFTER = 10;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() {
        phones.forEach(SipPhone::close);
    }

    @Test
    @Timeout(180)
    void refusedInvitesOverTlsAndTcp_holdNoSipTransactions_andARealCallStillGoesThrough() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(),
                        TestHosts.freePort(), TestHosts.freePort(), Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nin sips:*@caller FAILED accept"), TestHosts.keys(),
                new SipPhone.Listener() { }, Clock.systemUTC());
        phones.add(victim);
        assertTrue(jainSipLimitsServerTransactions(victim), "JAIN-SIP's own limit on server transactions is on, as"
                + " a backstop (1.3.0-91 reads MAX_SERVER_TRANSACTIONS but leaves the table unlimited)");

        // One attacker, one TLS connection (its host attests nothing the policy accepts), 1,200 INVITEs written as
        // fast as the connection takes them, none of them ACKed; then the same over plain TCP.
        try (RawSip tls = RawSip.tls(InetAddress.getByName("127.0.0.2"), victim.config().tlsPort(),
                AttestedTlsConfig.of(hosts.identity("mallory"), hosts.verifier(), Clock.systemUTC()));
             RawSip tcp = RawSip.tcp(InetAddress.getByName("127.0.0.2"), victim.config().tcpPort())) {
            flood(tls, "tls", TLS_FLOOD, victim);
            flood(tcp, "tcp", TCP_FLOOD, victim);
            // Requests outside any call: answered, and holding nothing either (over UDP a non-INVITE transaction
            // lingers 32 s after its answer, Timer J).
            Map<Integer, Integer> outside = outsideAnyCall(tcp, victim);
            assertEquals(Map.of(200, 100, 405, 100, 481, 200), outside, "answers over TCP to 100 OPTIONS, 100"
                    + " MESSAGE, and 100 BYE and 100 CANCEL for calls that do not exist");
            Map<Integer, Integer> udp = outsideAnyCallOverUdp(victim);
            assertEquals(Map.of(200, 100, 405, 100, 481, 200), udp, "the same over UDP");

            SipPhone.Held held = victim.held();
            assertTrue(held.sipServerTransactions() <= MAX_TRANSACTIONS_AFTER, "JAIN-SIP server transactions after "
                    + (TLS_FLOOD + TCP_FLOOD) + " refused INVITEs: " + held.sipServerTransactions() + " (at most "
                    + MAX_TRANSACTIONS_AFTER + "); " + held);
            assertTrue(held.sipDialogs() <= MAX_TRANSACTIONS_AFTER, "JAIN-SIP dialogs after the flood: " + held);
            assertEquals(0, held.callsInProgress(), "calls in progress after the flood: " + held);

            // The attacker's connection still works for it (nothing was torn down to make room), and a real call
            // from another host goes through at once.
            tls.send(RawSip.options("probe-after@x", "TLS", tls.via()));
            Await.until("the OPTIONS after the flood to be answered", Duration.ofSeconds(10),
                    () -> tls.finals().containsKey("probe-after@x"), () -> "responses: " + tls.finals().size());
        }
        SipPhone caller = SipPhone.start(new SipPhone.Config("caller", "caller", LOOPBACK, TestHosts.freePort(), 0,
                        0, Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity("caller"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
        phones.add(caller);
        Call call = caller.await(caller.call("sips:victim@victim", new InetSocketAddress(LOOPBACK,
                victim.config().tlsPort())));
        assertEquals(Call.State.ESTABLISHED, call.state(), "a real call right after the flood: " + call.reason()
                + "; the phone holds " + victim.held());
        caller.hangUp(call);
    }

    /** Writes {@code n} refused INVITEs in batches and waits for every final answer; each must be a 403. */
    private static void flood(RawSip peer, String prefix, int n, SipPhone victim) throws Exception {
        ByteArrayOutputStream batch = new ByteArrayOutputStream();
        for (int i = 0; i < n; i++) {
            batch.write(RawSip.invite(prefix + "-" + i + "@flood", "sips:mallory@mallory", peer.transport(),
                    peer.via()).getBytes(StandardCharsets.US_ASCII));
            if (i % 50 == 49 || i == n - 1) {
                peer.send(batch.toByteArray());
                batch.reset();
            }
        }
        Await.until("a final answer to each of the " + n + " INVITEs over " + prefix, Duration.ofSeconds(60),
                () -> peer.finals().keySet().stream().filter(k -> k.startsWith(prefix + "-")).count() >= n,
                () -> peer.finals().size() + " answered; statuses " + statuses(peer.finals()) + "; the phone holds "
                        + victim.held());
        Map<Integer, Integer> st = statuses(peer.finals());
        assertEquals(Map.of(403, n), st, "the answers to " + n + " INVITEs over " + prefix + " the policy refuses");
    }

    private static final List<String> OUTSIDE = List.of("OPTIONS", "MESSAGE", "BYE", "CANCEL");

    private static Map<Integer, Integer> outsideAnyCall(RawSip peer, SipPhone victim) throws Exception {
        StringBuilder all = new StringBuilder();
        for (int i = 0; i < 400; i++) {
            all.append(RawSip.request(OUTSIDE.get(i % 4), "out-" + i + "@flood", peer.transport(), peer.via()));
        }
        peer.send(all.toString());
        Await.until("answers to the 400 requests outside any call", Duration.ofSeconds(30),
                () -> peer.finals().keySet().stream().filter(k -> k.startsWith("out-")).count() >= 400,
                () -> peer.finals().size() + " answered; the phone holds " + victim.held());
        Map<String, RawSip.Response> answered = new java.util.HashMap<>(peer.finals());
        answered.keySet().removeIf(k -> !k.startsWith("out-"));
        return statuses(answered);
    }

    private static Map<Integer, Integer> outsideAnyCallOverUdp(SipPhone victim) throws Exception {
        Map<String, Integer> answered = new java.util.concurrent.ConcurrentHashMap<>();
        try (java.net.DatagramSocket s = new java.net.DatagramSocket(0, LOOPBACK)) {
            String via = "127.0.0.1:" + s.getLocalPort();
            for (int i = 0; i < 400; i++) {
                byte[] m = RawSip.request(OUTSIDE.get(i % 4), "udp-" + i + "@flood", "UDP", via)
                        .getBytes(StandardCharsets.US_ASCII);
                s.send(new java.net.DatagramPacket(m, m.length, new InetSocketAddress(LOOPBACK,
                        victim.config().udpPort())));
                if (i % 20 == 19) {
                    // 20 at a time, so none is lost in a socket buffer
                    receive(s, answered, i + 1);
                }
            }
        }
        Map<Integer, Integer> out = new TreeMap<>();
        answered.values().forEach(st -> out.merge(st, 1, Integer::sum));
        return out;
    }

    private static void receive(java.net.DatagramSocket s, Map<String, Integer> answered, int until)
            throws Exception {
        s.setSoTimeout(10_000);
        byte[] buf = new byte[65_536];
        java.util.regex.Pattern status = java.util.regex.Pattern.compile("^SIP/2\\.0 (\\d{3}) ");
        java.util.regex.Pattern callId = java.util.regex.Pattern.compile("(?mi)^Call-ID: *(\\S+)");
        while (answered.size() < until) {
            java.net.DatagramPacket p = new java.net.DatagramPacket(buf, buf.length);
            try {
                s.receive(p);
            } catch (java.net.SocketTimeoutException e) {
                throw new AssertionError("no answer over UDP for 10 s; " + answered.size() + " of " + until
                        + " answered: " + answered, e);
            }
            String text = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
            java.util.regex.Matcher m = status.matcher(text);
            java.util.regex.Matcher id = callId.matcher(text);
            if (m.find() && id.find() && Integer.parseInt(m.group(1)) >= 200) {
                answered.putIfAbsent(id.group(1), Integer.parseInt(m.group(1)));
            }
        }
    }

    private static boolean jainSipLimitsServerTransactions(SipPhone phone) throws Exception {
        java.lang.reflect.Field stack = SipPhone.class.getDeclaredField("stack");
        stack.setAccessible(true);
        java.lang.reflect.Field unlimited = gov.nist.javax.sip.stack.SIPTransactionStack.class
                .getDeclaredField("unlimitedServerTransactionTableSize");
        unlimited.setAccessible(true);
        return !unlimited.getBoolean(stack.get(phone));
    }

    private static Map<Integer, Integer> statuses(Map<String, RawSip.Response> finals) {
        Map<Integer, Integer> out = new TreeMap<>();
        finals.values().forEach(r -> out.merge(r.status(), 1, Integer::sum));
        return out;
    }
}
