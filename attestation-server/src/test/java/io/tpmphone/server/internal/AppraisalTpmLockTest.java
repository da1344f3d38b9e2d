package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.ManualClock;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The per-TPM lock of the appraisal path (one appraisal of a TPM at a time, which the CLOCK check relies on) was
 * striped by the AK id the client sent. So an AK id nobody enrolled, chosen to fall on an enrolled host's stripe, held
 * that host's appraisals up while its refusal was written, and two AKs of one TPM (an appraisal of the AK that a new
 * enrollment replaced, and one of its successor) were not serialised. The lock is now taken by the enrolled host's EK
 * name, after the lookup. And a refusal found under that lock (NONCE, the quote's checks) was recorded while holding
 * it, so one slow audit write (an fsync) held up every other appraisal of the TPM; it is recorded after the lock now.
 * Each test holds one appraisal at a latch (in the audit trail, or in the nonce service's clock, which is read under
 * the lock) and looks at where a second one is: finished, or blocked on the first one's lock.
 */
@Timeout(60)
class AppraisalTpmLockTest {
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final String POLICY = "{\"version\":1,\"measurementPcr\":14,\"pcrBank\":\"sha256\","
            + "\"bootPcrs\":[0],\"releases\":[{\"name\":\"softphone-test\",\"jvm\":{\"/usr/bin/java\":\""
            + "11".repeat(32) + "\"},\"jars\":{\"softphone.jar\":\"" + "22".repeat(32) + "\"},\"configuration\":"
            + "{\"softphone.properties\":\"" + "33".repeat(32) + "\"},\"commandLine\":[\"/usr/bin/java\",\"-cp\","
            + "\"softphone.jar\",\"Main\"]}],\"requireIsolation\":false,\"nonceTtlSeconds\":30,"
            + "\"resultTtlSeconds\":300}";

    @TempDir
    Path dir;
    private final ManualClock clock = new ManualClock();
    /** The nonce service's clock: holds the thread named {@link #holdInClock} once, when it consumes a nonce. */
    private final Clock nonceClock = new Clock() {
        @Override
        public Instant instant() {
            if (Thread.currentThread().getName().equals(holdInClock)) {
                holdInClock = "";
                hold();
            }
            return clock.instant();
        }

        @Override
        public ZoneId getZone() {
            return clock.getZone();
        }

        @Override
        public Clock withZone(ZoneId zone) {
            return this;
        }
    };
    private volatile String holdInClock = "";
    private final CountDownLatch holding = new CountDownLatch(1);
    private final CountDownLatch release = new CountDownLatch(1);
    private final List<String> recorded = Collections.synchronizedList(new ArrayList<>());
    private volatile String holdAtSubject = "";
    private Registry registry;
    private NonceService nonces;
    private Appraisals appraisals;
    private AttestationPolicy policy;

    @BeforeEach
    void open() throws Exception {
        registry = Registry.open(dir.resolve("registry.db"), clock);
        policy = AttestationPolicy.parse(POLICY);
        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC");
        ec.initialize(new ECGenParameterSpec("secp256r1"));
        AuditTrail trail = (type, subject, outcome, detail) -> {
            recorded.add(subject + " " + outcome + " " + detail.get("check"));
            if (subject.equals(holdAtSubject)) {
                holdAtSubject = ""; // the first record of that subject only
                hold();
            }
        };
        nonces = new NonceService(nonceClock);
        appraisals = new Appraisals(registry, nonces, new ResultSigner(ec.generateKeyPair()),
                new KeyApprover(ec.generateKeyPair()), trail, clock, () -> policy);
    }

    /** Holds the calling thread until the test releases it. */
    private void hold() {
        holding.countDown();
        try {
            if (!release.await(WAIT.toSeconds(), TimeUnit.SECONDS)) {
                throw new AssertionError("the test never released the held appraisal");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @AfterEach
    void close() throws Exception {
        release.countDown();
        registry.close();
    }

    @Test
    void anAkIdNobodyEnrolled_onAnEnrolledHostsStripe_doesNotHoldUpThatHostsAppraisal() throws Exception {
        String victim = akId("a1");
        enroll("victim", "e1", victim);
        String forged = sameOldStripeAs(victim);
        holdAtSubject = subject(forged);
        Appraising a = appraise(forged);
        assertTrue(holding.await(WAIT.toSeconds(), TimeUnit.SECONDS), "the forged id's refusal is being recorded");

        Appraising b = appraise(victim);
        Await.until("the victim's appraisal to finish or to wait for the forged id's lock", WAIT,
                () -> b.result.isDone() || b.blockedOn(a), () -> b.state());
        assertTrue(b.result.isDone(), "the victim's appraisal waits while a refusal of a made-up AK id is recorded: "
                + b.state());
        assertEquals("NONCE", refusedCheck(b), "the victim's appraisal went on to its nonce");
        release.countDown();
        assertEquals("AK_ENROLLED", refusedCheck(a), "the forged id is refused as not enrolled");
    }

    @Test
    void theAkAnEnrollmentReplaced_andItsSuccessor_areAppraisedOneAtATime() throws Exception {
        String first = akId("b1");
        enroll("host1", "e2", first);
        String nonce = HexFormat.of().formatHex(nonces.issue(first, Duration.ofSeconds(30)));
        holdInClock = threadName(first); // held while it consumes its nonce: looked up as enrolled, under the lock
        Appraising a = appraise(first, nonce);
        assertTrue(holding.await(WAIT.toSeconds(), TimeUnit.SECONDS), "the first AK's nonce is being consumed");

        String successor = otherOldStripeThan(first);
        enroll("host1", "e2", successor); // the host enrolls a new AK in the same TPM
        Appraising b = appraise(successor);
        Await.until("the successor's appraisal to finish or to wait for the TPM's lock", WAIT,
                () -> b.result.isDone() || b.blockedOn(a), () -> b.state());
        assertTrue(b.blockedOn(a), "two appraisals of one TPM ran at once, under two AK ids: " + b.state()
                + "; recorded " + recorded);
        release.countDown();
        assertEquals("AK_ENROLLED", refusedCheck(a), "the first went on past its nonce (to its AK, a stub that does"
                + " not parse)");
        assertEquals("NONCE", refusedCheck(b), "the successor is appraised once the first is done");
    }

    /**
     * A refusal found under the TPM's lock (here NONCE, for the host's public AK id, which anyone can send) was
     * recorded while holding it: a slow audit write held up the host's own appraisal until it finished.
     */
    @Test
    void aSlowAuditWriteOfARefusal_doesNotHoldUpAnotherAppraisalOfTheSameTpm() throws Exception {
        String ak = akId("c1");
        enroll("host2", "e3", ak);
        holdAtSubject = subject(ak); // the first refusal of this AK is held in its audit write
        Appraising a = appraise(ak);
        assertTrue(holding.await(WAIT.toSeconds(), TimeUnit.SECONDS), "the first refusal is being recorded");

        Appraising b = appraise(ak); // the same TPM
        Await.until("the second appraisal to finish or to wait for the TPM's lock", WAIT,
                () -> b.result.isDone() || b.blockedOn(a), () -> b.state());
        assertTrue(b.result.isDone(), "the second appraisal of the TPM waited for the first one's audit write: "
                + b.state() + "; recorded " + recorded);
        assertEquals("NONCE", refusedCheck(b));
        assertFalse(a.result.isDone(), "the first one is still in its audit write: " + a.state());
        release.countDown();
        assertEquals("NONCE", refusedCheck(a));
        assertEquals(Collections.nCopies(2, subject(ak) + " APPRAISAL_REFUSED NONCE"), recorded,
                "both refusals are recorded");
    }

    /** One appraisal running on a thread of its own, so the test can see where it waits. */
    private static final class Appraising {
        final CompletableFuture<Object> result = new CompletableFuture<>();
        final Thread thread;

        Appraising(Appraisals appraisals, String name, String body) {
            thread = new Thread(() -> {
                try {
                    result.complete(appraisals.appraise(body));
                } catch (Throwable t) {
                    result.completeExceptionally(t);
                }
            }, name);
            thread.setDaemon(true);
            thread.start();
        }

        @SuppressWarnings("deprecation") // Thread.getId: Thread.threadId is Java 19
        boolean blockedOn(Appraising other) {
            ThreadInfo info = ManagementFactory.getThreadMXBean().getThreadInfo(thread.getId());
            return info != null && info.getThreadState() == Thread.State.BLOCKED
                    && info.getLockOwnerId() == other.thread.getId();
        }

        @SuppressWarnings("deprecation")
        String state() {
            ThreadInfo info = ManagementFactory.getThreadMXBean().getThreadInfo(thread.getId());
            return (result.isDone() ? "finished" : "running") + ", thread " + (info == null ? "gone"
                    : info.getThreadState() + (info.getLockOwnerName() == null ? ""
                    : " on a lock of " + info.getLockOwnerName() + " #" + info.getLockOwnerId()));
        }
    }

    private Appraising appraise(String akId) {
        return appraise(akId, "5a".repeat(32)); // a nonce nobody issued
    }

    private Appraising appraise(String akId, String nonceHex) {
        String zeros = "\"" + "00".repeat(32) + "\"";
        String body = "{\"akId\":\"" + akId + "\",\"nonce\":\"" + nonceHex + "\",\"attest\":\"AAAA\","
                + "\"signature\":\"AAAA\",\"pcrSelection\":\"" + policy.requiredPcrSelection() + "\",\"pcrValues\":["
                + zeros + "," + zeros + "],\"eventLog\":\"\"}";
        return new Appraising(appraisals, threadName(akId), body);
    }

    private static String threadName(String akId) {
        return "appraisal of " + subject(akId);
    }

    private static String refusedCheck(Appraising a) throws InterruptedException {
        try {
            Object answer = a.result.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            throw new AssertionError("expected a refusal, got " + answer);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof ApiException api) {
                return api.check();
            }
            throw new AssertionError("expected an ApiException, got " + e.getCause(), e.getCause());
        } catch (java.util.concurrent.TimeoutException e) {
            throw new AssertionError("the appraisal did not finish: " + a.state(), e);
        }
    }

    private void enroll(String host, String ek, String akId) throws Exception {
        byte[] ekName = HexFormat.of().parseHex("000b" + ek.repeat(32));
        registry.enroll(new Registry.Host(host, ekName, new byte[] {1}, new byte[] {2}, HexFormat.of().parseHex(akId),
                new byte[] {3}, clock.instant().toString()));
    }

    /** A SHA-256 AK name in hex whose first 20 characters are its own. */
    private static String akId(String tag) {
        return "000b" + tag + "0".repeat(62 - tag.length()) + "ff";
    }

    private static String subject(String akId) {
        return "ak:" + akId.substring(0, 20) + "…";
    }

    private static int oldStripe(String akId) {
        return Math.floorMod(akId.hashCode(), 256);
    }

    /** An AK id nobody enrolled that fell on the same stripe as {@code akId} when stripes were keyed by AK id. */
    private static String sameOldStripeAs(String akId) {
        for (int i = 0; ; i++) {
            String candidate = "000bf" + String.format("%015x", i) + "0".repeat(48);
            if (oldStripe(candidate) == oldStripe(akId)) {
                assertNotEquals(subject(akId), subject(candidate));
                return candidate;
            }
        }
    }

    /** Another AK id that fell on another stripe than {@code akId} when stripes were keyed by AK id. */
    private static String otherOldStripeThan(String akId) {
        for (int i = 0; ; i++) {
            String candidate = "000bc" + String.format("%015x", i) + "0".repeat(48);
            if (oldStripe(candidate) != oldStripe(akId)) {
                return candidate;
            }
        }
    }
}
