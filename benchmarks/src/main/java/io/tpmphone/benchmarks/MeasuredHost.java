package io.tpmphone.benchmarks;

import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.agent.MeasuredLauncher;
import io.tpmphone.agent.MeasurementLogStore;
import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmUri;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

/**
 * One simulated host: a real swtpm with an EK certificate, an AK under its EK, and a measured launch of the
 * benchmark {@link Release} in PCR 14 (BASELINE, JVM (java.home tree digest), 3 jars, configuration, command line,
 * ISOLATION, LAUNCH) —
 * the events {@link MeasuredLauncher} records, without starting a child. One owner thread at a time (swtpm serves
 * one connection); quotes come out in TPM clock order, which is the order the server must see them in.
 */
final class MeasuredHost implements AutoCloseable {
    /**
     * An ISOLATION event's data like the one {@link MeasuredLauncher} records for a child running as nobody (the
     * appraiser checks that the event is there, not its words).
     */
    private static final String ISOLATION = "unshare --pid --fork --mount --ipc --mount-proc --kill-child; code dir"
            + " ro-bind at " + MeasuredLauncher.CHILD_CODE_MOUNT + "; setpriv uid 65534 gid 65534 clear-groups"
            + " no_new_privs bounding-set -all inh-caps -all (no capabilities)";

    private final String name;
    private final SwtpmProcess swtpm;
    private final TpmClient tpm;
    private final MeasurementLogStore store;

    private MeasuredHost(String name, SwtpmProcess swtpm, TpmClient tpm, MeasurementLogStore store) {
        this.name = name;
        this.swtpm = swtpm;
        this.tpm = tpm;
        this.store = store;
    }

    /** Starts swtpm, creates EK and AK, and measures the launch of {@code spec}. */
    static MeasuredHost start(String name, Path directory, LaunchSpec spec) throws IOException, TpmException {
        SwtpmProcess swtpm = SwtpmProcess.builder().withEkCertificate(true).start();
        TpmClient tpm = null;
        MeasurementLogStore store = null;
        try {
            tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
            tpm.ensureEndorsementKey(EkType.RSA_2048);
            if (tpm.readPublic(PersistentHandle.AK).isEmpty()) {
                tpm.createAttestationKey(EkType.RSA_2048.defaultHandle(), PersistentHandle.AK);
            }
            store = MeasurementLogStore.open(directory.resolve(name + "-log"), tpm, Release.MEASUREMENT_PCR);
            MeasuredHost host = new MeasuredHost(name, swtpm, tpm, store);
            host.measureLaunch(spec);
            return host;
        } catch (IOException | TpmException | RuntimeException e) {
            if (store != null) {
                store.close();
            }
            if (tpm != null) {
                tpm.close();
            }
            swtpm.close();
            throw e;
        }
    }

    /** Starts {@code count} hosts named {@code bench-host-N}, four at a time. */
    static List<MeasuredHost> startAll(int count, Path directory, LaunchSpec spec) throws Exception {
        java.util.concurrent.ExecutorService starters = java.util.concurrent.Executors.newFixedThreadPool(
                Math.min(count, 4));
        List<java.util.concurrent.Future<MeasuredHost>> started = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                String name = "bench-host-" + i;
                started.add(starters.submit(() -> start(name, directory, spec)));
            }
            List<MeasuredHost> hosts = new ArrayList<>();
            for (java.util.concurrent.Future<MeasuredHost> f : started) {
                hosts.add(f.get());
            }
            return hosts;
        } catch (Exception e) {
            for (java.util.concurrent.Future<MeasuredHost> f : started) {
                if (f.isDone() && !f.isCancelled()) {
                    try {
                        f.get().close();
                    } catch (java.util.concurrent.ExecutionException ignored) {
                        // that one did not start
                    }
                }
            }
            throw e;
        } finally {
            starters.shutdown();
        }
    }

    private void measureLaunch(LaunchSpec spec) throws IOException, TpmException {
        MeasuredLauncher.JvmDigest jvm = MeasuredLauncher.jvmDigest(spec);
        store.measure(EventType.JVM, jvm.digest(), jvm.javaHome());
        for (Path jar : spec.classPath()) {
            store.measureFile(EventType.CLASSPATH_JAR, jar, jar.getFileName().toString());
        }
        store.measureFile(EventType.CONFIGURATION, spec.configFile(), spec.configFile().getFileName().toString());
        String argv = String.join("\0", MeasuredLauncher.commandLine(spec));
        store.measure(EventType.COMMAND_LINE, HashAlgorithm.SHA256.digest(argv.getBytes(StandardCharsets.UTF_8)),
                argv);
        store.measure(EventType.ISOLATION, HashAlgorithm.SHA256.digest(ISOLATION.getBytes(StandardCharsets.UTF_8)),
                ISOLATION);
        String launch = "pid 4242 start " + java.time.Instant.now();
        store.measure(EventType.LAUNCH, HashAlgorithm.SHA256.digest(launch.getBytes(StandardCharsets.US_ASCII)),
                launch);
    }

    String name() {
        return name;
    }

    TpmClient tpm() {
        return tpm;
    }

    TpmtPublic ekPublic() throws TpmException {
        return tpm.ensureEndorsementKey(EkType.RSA_2048);
    }

    byte[] ekCertificate() throws TpmException {
        return tpm.readEndorsementCertificate(EkType.RSA_2048).orElseThrow(() -> new TpmException(
                "swtpm " + swtpm + " has no RSA EK certificate"));
    }

    TpmtPublic akPublic() throws TpmException {
        return tpm.readPublic(PersistentHandle.AK).orElseThrow(() -> new TpmException("no AK in " + swtpm));
    }

    MeasurementLog log() {
        return store.log();
    }

    /**
     * Answers the registrar's MakeCredential challenge with this host's TPM (TPM2_ActivateCredential with the AK and
     * the RSA EK): the recovered secret, a copy the caller wipes.
     */
    byte[] activate(CredentialBlob challenge) throws TpmException {
        SecretBytes secret = tpm.activateCredential(PersistentHandle.AK, EkType.RSA_2048.defaultHandle(),
                challenge.integrityHmac(), challenge.encIdentity(), challenge.encryptedSecret());
        try {
            return secret.reveal();
        } finally {
            secret.destroy();
        }
    }

    TpmQuote quote(PcrSelection selection, byte[] nonce) throws TpmException {
        return tpm.quote(PersistentHandle.AK, selection, nonce);
    }

    /** The CA chain (issuing CA, root) of this swtpm's EK certificate, for the server's trust list. */
    List<X509Certificate> ekCaChain() throws IOException {
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            List<X509Certificate> chain = new ArrayList<>();
            for (Path p : List.of(swtpm.caCertificate(), swtpm.rootCertificate())) {
                try (InputStream in = Files.newInputStream(p)) {
                    chain.add((X509Certificate) cf.generateCertificate(in));
                }
            }
            return chain;
        } catch (java.security.cert.CertificateException e) {
            throw new IOException("cannot read the swtpm CA certificates", e);
        }
    }

    @Override
    public void close() {
        try {
            store.close();
        } catch (IOException e) {
            // The log directory is a throw-away; nothing to do.
        }
        tpm.close();
        swtpm.close();
    }
}
