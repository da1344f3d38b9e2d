package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.DtlsDatagramTransport;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import io.tpmphone.tls.RogueFarEnd;
import java.lang.management.ManagementFactory;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * "10,000 random evidence messages change nothing" (issue 14): a far end whose DTLS-SRTP association with a live
 * phone stands (handshake and evidence exchange done) throws 10,000 random and mutated evidence records at it inside
 * the association, and 10,000 malformed DTLS records at its media socket from outside it; the phone drops them, the
 * call is then answered and its SRTP starts, a real DTLS-SRTP call between two phones afterwards carries tones both
 * ways, and the JVM's threads and heap stay bounded. Deterministic: the seed is {@code -Dfuzz.seed} (default 14) and
 * every failure names it.
 */
@Timeout(180)
class EvidenceFloodIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final int MESSAGES = 10_000;
    private static final long SEED = Long.getLong("fuzz.seed", 14L);

    @Test
    void tenThousandRandomEvidenceMessagesAndMalformedRecords_changeNothing() throws Exception {
        String seed = "seed " + SEED + " (-Dfuzz.seed=" + SEED + ")";
        Random random = new Random(SEED);
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity mallory = hosts.identity("mallory");
        int tcpPort = TestHosts.freePort();
        try (SipPhone victim = phone(hosts, "victim", tcpPort, 440);
             DatagramSocket media = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0));
             RawSip caller = RawSip.tcp(LOOPBACK, tcpPort)) {
            // a DTLS-SRTP call from a raw caller without 100rel: the victim answers 200 at once and waits for the ACK
            String fp = DtlsFingerprint.sha256(mallory.certificateChain().get(0).getEncoded()).toSdp();
            String sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    + "m=audio " + media.getLocalPort() + " UDP/TLS/RTP/SAVP 0\r\na=fingerprint:" + fp
                    + "\r\na=setup:actpass\r\na=rtcp-mux\r\n";
            String plain = RawSip.invite("flood", "sip:mallory@flood.test", "TCP", caller.via());
            String head = plain.substring(0, plain.indexOf("Content-Type:"));
            caller.send(head + "Content-Type: application/sdp\r\nContent-Length: " + sdp.length() + "\r\n\r\n" + sdp);
            RawSip.Response ok = Await.until("the 200", WAIT, () -> caller.finals().get("flood"), x -> x != null);
            assertEquals(200, ok.status(), ok::text);
            Matcher tag = Pattern.compile("(?mi)^To:.*;tag=([^;\\s]+)").matcher(ok.text());
            Matcher port = Pattern.compile("(?m)^m=audio (\\d+) ").matcher(ok.text());
            Matcher theirFp = Pattern.compile("a=fingerprint:([^\r\n]+)").matcher(ok.text());
            assertTrue(tag.find() && port.find() && theirFp.find(), ok::text);
            InetSocketAddress victimMedia = new InetSocketAddress(LOOPBACK, Integer.parseInt(port.group(1)));
            Call atVictim = victim.callById("flood").orElseThrow();

            // The association, as a genuine far end makes it: handshake (we are the server: the victim answered
            // a=setup:active) and both evidence exchanges.
            AttestedTlsConfig tls = AttestedTlsConfig.of(mallory, hosts.verifier(), Clock.systemUTC());
            DtlsSrtpConfig cfg = DtlsSrtpConfig.of(tls, DtlsFingerprint.parse(theirFp.group(1).trim()));
            try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(new DtlsDatagramTransport(media,
                    victimMedia), false, cfg)) {
                Await.until("the victim's end-to-end decision", WAIT, () -> atVictim.farEndDecision().isPresent(),
                        b -> b);
                System.gc();
                long heapBefore = usedHeap();
                int threadsBefore = ManagementFactory.getThreadMXBean().getThreadCount();
                int limit = RogueFarEnd.sendLimit(a);
                for (int i = 0; i < MESSAGES; i++) {
                    RogueFarEnd.send(a, evidenceRecord(random, limit));
                    byte[] raw = malformedRecord(random);
                    media.send(new DatagramPacket(raw, raw.length, victimMedia));
                    if (i % 100 == 99) {
                        a.serviceIncoming(1); // take what the victim sends meanwhile (a resent evidence fragment)
                    }
                }
                // the flood started no thread and kept nothing (measured in the same state: before the ACK)
                System.gc();
                long heapAfter = usedHeap();
                int threadsAfter = ManagementFactory.getThreadMXBean().getThreadCount();
                assertTrue(threadsAfter <= threadsBefore + 2, () -> seed + ": threads " + threadsBefore + " → "
                        + threadsAfter);
                assertTrue(heapAfter <= heapBefore + 32L * 1024 * 1024, () -> seed + ": heap after GC "
                        + heapBefore / 1024 + " KiB → " + heapAfter / 1024 + " KiB");
                org.slf4j.LoggerFactory.getLogger(EvidenceFloodIT.class).info("{}: {} evidence records inside the"
                        + " association and {} malformed DTLS records outside it; threads {} → {}, heap after GC {}"
                        + " KiB → {} KiB", seed, MESSAGES, MESSAGES, threadsBefore, threadsAfter, heapBefore / 1024,
                        heapAfter / 1024);
                // the call is intact: the victim still waits for our ACK with its association up
                assertEquals(Call.State.RINGING, atVictim.state(), () -> seed + ": the victim's call after the flood: "
                        + atVictim.state() + " " + atVictim.reason());
                caller.send("ACK sip:victim@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP " + caller.via()
                        + ";rport;branch=z9hG4bKackflood\r\nMax-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>;tag="
                        + tag.group(1) + "\r\nFrom: <sip:mallory@flood.test>;tag=fflood\r\nCall-ID: flood\r\n"
                        + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
                Await.until("the victim's call to be ESTABLISHED with SRTP started", WAIT, () -> atVictim.state()
                        == Call.State.ESTABLISHED && atVictim.dtls().orElseThrow().started().getNow(false),
                        () -> seed + ": " + atVictim.state() + " " + atVictim.reason());
                victim.hangUp(atVictim);
            }

            // And a real call afterwards: DTLS-SRTP between two phones, tones both ways.
            try (SipPhone alice = phone(hosts, "alice", 0, 1000)) {
                Call call = alice.await(alice.call("sips:victim@victim", new InetSocketAddress(LOOPBACK,
                        victim.config().tlsPort())));
                assertEquals(Call.State.ESTABLISHED, call.state(), () -> seed + ": " + call.reason());
                Call theirs = victim.await(victim.callById(call.callId()).orElseThrow());
                AudioSession aliceAudio = call.audio().orElseThrow();
                AudioSession victimAudio = theirs.audio().orElseThrow();
                Await.until("each side to decode 8000 samples of the other's audio", WAIT,
                        () -> aliceAudio.received().samples().length >= 8000
                                && victimAudio.received().samples().length >= 8000,
                        () -> seed + ": alice decoded " + aliceAudio.received().samples().length + " ("
                                + aliceAudio.stats() + "), the victim " + victimAudio.received().samples().length
                                + " (" + victimAudio.stats() + ")");
                assertEquals(1000.0, Wav.dominantFrequency(victimAudio.received().samples(), 4000), 20.0,
                        () -> seed + ": the victim hears alice's tone: " + victimAudio.stats());
                assertEquals(440.0, Wav.dominantFrequency(aliceAudio.received().samples(), 4000), 20.0,
                        () -> seed + ": alice hears the victim's tone: " + aliceAudio.stats());
                alice.hangUp(call);
            }
        }
    }

    private static SipPhone phone(TestHosts hosts, String name, int tcpPort, double tone) throws Exception {
        AttestedTlsConfig tls = AttestedTlsConfig.of(hosts.identity(name), hosts.verifier(), Clock.systemUTC());
        return SipPhone.start(new SipPhone.Config(name, name, LOOPBACK, TestHosts.freePort(), tcpPort, 0,
                        Duration.ofSeconds(15), SipPhone.MediaMode.DTLS_SRTP),
                tls, CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                callId -> AudioSession.open(LOOPBACK, Wav.tone(tone, 0.5, 1)), Clock.systemUTC());
    }

    private static long usedHeap() {
        Runtime r = Runtime.getRuntime();
        return r.totalMemory() - r.freeMemory();
    }

    /**
     * One evidence record as the far end may send it (docs: version, type, total length, offset, fragment): a third
     * random bytes of any length, a third well-formed headers with random fields, a third a plausible fragment with
     * bytes flipped.
     */
    private static byte[] evidenceRecord(Random random, int limit) {
        int kind = random.nextInt(3);
        if (kind == 0) {
            byte[] b = new byte[1 + random.nextInt(Math.min(limit, 1200))]; // BC sends no empty record
            random.nextBytes(b);
            return b;
        }
        int fragment = random.nextInt(Math.max(1, Math.min(limit, 1200) - 6));
        byte[] b = new byte[6 + fragment];
        random.nextBytes(b);
        b[0] = 1;
        b[1] = (byte) (kind == 1 ? random.nextInt(4) : 1);
        int total = kind == 1 ? random.nextInt(65_536) : 2048;
        b[2] = (byte) (total >> 8);
        b[3] = (byte) total;
        int offset = kind == 1 ? random.nextInt(65_536) : random.nextInt(2048 - Math.min(fragment, 2047));
        b[4] = (byte) (offset >> 8);
        b[5] = (byte) offset;
        if (kind == 2 && b.length > 6) {
            b[6 + random.nextInt(b.length - 6)] ^= (byte) (1 + random.nextInt(255));
        }
        return b;
    }

    /** A datagram that looks like a DTLS record (content type 20..25, RFC 7983's DTLS range) and is not one. */
    private static byte[] malformedRecord(Random random) {
        byte[] b = new byte[1 + random.nextInt(300)];
        random.nextBytes(b);
        b[0] = (byte) (20 + random.nextInt(6));
        if (b.length > 2 && random.nextBoolean()) {
            b[1] = (byte) 0xfe; // DTLS 1.2's version bytes
            b[2] = (byte) 0xfd;
        }
        return b;
    }
}
