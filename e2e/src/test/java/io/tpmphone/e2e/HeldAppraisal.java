package io.tpmphone.e2e;

import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.tls.PassportVerifier;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A phone's appraisal of the far end's evidence made as slow as the test wants, without a sleep in the product: the
 * rig's passport verifier (the same result key and device CA) on a clock the test holds. Once {@link #arm()}ed, the
 * first reading of the clock on a call's DTLS thread — the appraisal of the far end's evidence, after the evidence
 * exchange — waits until {@link #release()} (or {@link #LIMIT}, so a failing test never leaves a thread behind). The
 * phone's SIP TLS (its hop) and every other thread read the clock as usual.
 */
final class HeldAppraisal extends Clock {
    /** The longest a held appraisal waits for {@link #release()}. */
    static final Duration LIMIT = Duration.ofSeconds(60);

    private final AtomicBoolean armed = new AtomicBoolean();
    private final CountDownLatch reached = new CountDownLatch(1);
    private final CountDownLatch released = new CountDownLatch(1);
    private final PassportVerifier verifier;

    HeldAppraisal(TwoHostRig rig) throws Exception {
        X509Certificate deviceCa = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(
                new ByteArrayInputStream(rig.client().get("/v1/server", null).get("deviceCaCertificate").asText()
                        .getBytes(StandardCharsets.US_ASCII)));
        this.verifier = new PassportVerifier(rig.server().resultVerificationKey(), List.of(deviceCa), this);
    }

    /** The verifier to give the phone whose appraisal the test holds. */
    PassportVerifier verifier() {
        return verifier;
    }

    /** The next appraisal on a DTLS thread waits for {@link #release()}. */
    void arm() {
        armed.set(true);
    }

    /** Waits until an appraisal is held; whether it was within {@code limit}. */
    boolean awaitHeld(Duration limit) throws InterruptedException {
        return reached.await(limit.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Lets the held appraisal (and any later one) go on. */
    void release() {
        armed.set(false);
        released.countDown();
    }

    @Override
    public Instant instant() {
        if (Thread.currentThread().getName().startsWith("dtls-srtp-") && armed.compareAndSet(true, false)) {
            reached.countDown();
            try {
                released.await(LIMIT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return Instant.now();
    }

    @Override
    public ZoneId getZone() {
        return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(ZoneId zone) {
        return Clock.system(zone);
    }
}
