package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import java.time.Duration;
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
 * name, after the lookup. Each test holds one appraisal inside the audit record of its refusal (a latch in the audit
 * trail) and looks at where a second one is: finished, or blocked on the first one's lock.
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
    private final CountDownLatch holding = new CountDownLatch(1);
    private final CountDownLatch release = new CountDownLatch(1);
    private final List<String> recorded = Collections.synchronizedList(new ArrayList<>());
    private volatile String holdAtSubject = "";
    private Registry registry;
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
                holding.countDown();
                try {
                    if (!release.await(WAIT.toSeconds(), TimeUnit.SECONDS)) {
                        throw new AssertionError("the test never released the held appraisal");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        appraisals = new Appraisals(registry, new NonceService(clock), new ResultSigner(ec.generateKeyPair()),
                new KeyApprover(ec.generateKeyPair()), trail, clock, () -> policy);
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
        holdAtSubject = subject(first);
        Appraising a = appraise(first); // looked up as enrolled, then held inside its NONCE refusal, under the lock
        assertTrue(holding.await(WAIT.toSeconds(), TimeUnit.SECONDS), "the first AK's refusal is being recorded");

        String successor = otherOldStripeThan(first);
        enroll("host1", "e2", successor); // the host enrolls a new AK in the same TPM
        Appraising b = appraise(successor);
        Await.until("the successor's appraisal to finish or to wait for the TPM's lock", WAIT,
                () -> b.result.isDone() || b.blockedOn(a), () -> b.state());
        assertTrue(b.blockedOn(a), "two appraisals of one TPM ran at once, under two AK ids: " + b.state()
                + "; recorded " + recorded);
        release.countDown();
        assertEquals("NONCE", refusedCheck(a));
        assertEquals("NONCE", refusedCheck(b), "the successor is appraised once the first is done");
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
        String zeros = "\"" + "00".repeat(32) + "\"";
        String body = "{\"akId\":\"" + akId + "\",\"nonce\":\"" + "5a".repeat(32) + "\",\"attest\":\"AAAA\","
                + "\"signature\":\"AAAA\",\"pcrSelection\":\"" + policy.requiredPcrSelection() + "\",\"pcrValues\":["
                + zeros + "," + zeros + "],\"eventLog\":\"\"}";
        return new Appraising(appraisals, "appraisal of " + subject(akId), body);
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
