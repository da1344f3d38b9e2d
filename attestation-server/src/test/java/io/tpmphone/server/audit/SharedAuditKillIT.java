package io.tpmphone.server.audit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import io.tpmphone.swtpm.testing.Await;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * An instance appending to the shared audit chain, and holding the checkpoint signer's lease, is killed with SIGKILL
 * in the middle of load while another instance appends too: no record it acknowledged is lost, the chain stays one
 * intact chain, and the survivor takes over the signing.
 */
@Timeout(180)
@ExtendWith(PostgresExtension.class)
class SharedAuditKillIT {
    /**
     * The shortest leases (2 s signer, 4 s writer; defaults 3 s and 10 s): the take-over after the kill and the
     * survivor's wait at close for the dead writer's lease are what is tested, not how long they take.
     */
    static final AuditLog.Options OPTIONS = AuditLog.Options.builder().checkpointEvery(100)
            .maxUnsignedAge(Duration.ofMillis(500)).signerLease(AuditLog.Options.MIN_SIGNER_LEASE)
            .writerLease(AuditLog.Options.MIN_WRITER_LEASE).build();
    private static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    void aSigkilledInstance_losesNoAcknowledgedRecord_andTheSurvivorSignsOn(TestBackend db) throws Exception {
        KeyPair keys = AuditTestSupport.ecKeyPair();
        Path privateKey = Files.write(dir.resolve("key.p8"), keys.getPrivate().getEncoded());
        Path publicKey = Files.write(dir.resolve("key.x509"), keys.getPublic().getEncoded());
        ConcurrentLinkedQueue<String> childSaid = new ConcurrentLinkedQueue<>();
        Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), SharedAuditAppenderMain.class.getName(), db.databaseUrl(),
                privateKey.toString(), publicKey.toString()).redirectError(dir.resolve("child.err").toFile()).start();
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(child.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String line = in.readLine(); line != null; line = in.readLine()) {
                    childSaid.add(line);
                }
            } catch (java.io.IOException e) {
                childSaid.add("READ FAILED " + e);
            }
        }, "child-stdout");
        reader.start();
        ServerDatabase pool = null;
        ExecutorService workers = Executors.newFixedThreadPool(2);
        AtomicBoolean running = new AtomicBoolean(true);
        try {
            Await.until("the child instance appends", WAIT, () -> acks(childSaid).size() >= 50,
                    () -> "it said " + childSaid.size() + " lines; stderr " + stderr());
            String childSigner = Await.until("the child, alone, holds the signer's lease", WAIT, () -> signer(db),
                    Optional::isPresent).orElseThrow();
            pool = ServerDatabase.postgresql(db.databaseUrl(), null, 4);
            AuditLog survivor = AuditLog.openShared(pool.dataSource(), pool.description(), AuditSigner.ecdsa(keys),
                    OPTIONS);
            List<Future<Long>> appenders = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                int thread = t;
                appenders.add(workers.submit(() -> {
                    long n = 0;
                    while (running.get()) {
                        survivor.append(AuditEntry.of(AuditEventType.APPRAISAL, "survivor-" + thread, "MEASURED",
                                Map.of("n", n++)));
                    }
                    return n;
                }));
            }
            int before = acks(childSaid).size();
            Await.until("both instances append", WAIT, () -> acks(childSaid).size() >= before + 200
                    && survivor.size() > 0, () -> "child acks " + acks(childSaid).size());
            child.destroyForcibly(); // SIGKILL, in the middle of its appends
            assertTrue(child.waitFor(30, TimeUnit.SECONDS), "the child did not die");
            assertEquals(137, child.exitValue(), "killed by SIGKILL");
            reader.join(WAIT.toMillis());

            running.set(false);
            for (Future<Long> f : appenders) {
                f.get(30, TimeUnit.SECONDS);
            }
            // The dead signer's lease lapses and the survivor takes it. (Waited for on its own: a record whose seq is
            // a multiple of the interval is signed in its own batch, by whichever instance appends it, so a signed
            // record alone does not show a take-over; it once did not, seen with the lease still the child's.)
            Optional<String> nowSigning = Await.until("the survivor takes over the signer's lease", WAIT,
                    () -> signer(db), s -> s.isPresent() && !s.get().equals(childSigner));
            assertTrue(nowSigning.isPresent() && !nowSigning.get().equals(childSigner), "the signer's lease moved"
                    + " from the killed instance " + childSigner + " to the survivor, saw " + nowSigning);
            // The survivor appends once more, and signs it as the signer.
            AuditRecord late = survivor.append(AuditEntry.of(AuditEventType.APPRAISAL, "survivor", "MEASURED",
                    Map.of("after", "kill")));
            Await.until("the survivor signs record " + late.seq(), WAIT,
                    () -> signedUpTo(db) >= late.seq(), () -> "signed up to " + signedUpTo(db));
            survivor.close();
        } finally {
            running.set(false);
            workers.shutdownNow();
            child.destroyForcibly();
            if (pool != null) {
                pool.close();
            }
        }

        Map<Long, String> acknowledged = acks(childSaid);
        Map<Long, String> stored = stored(db);
        for (Map.Entry<Long, String> ack : acknowledged.entrySet()) {
            assertEquals(ack.getValue(), stored.get(ack.getKey()), "record " + ack.getKey()
                    + " that the killed instance acknowledged is stored as it said");
        }
        // Closed: the survivor, stopped while the killed instance's writer lease still ran, waited for it to lapse.
        VerificationReport report = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.closed());
        assertTrue(report.intact(), "one intact, closed chain after the kill: " + report.summary());
        assertEquals(0, report.unsignedRecords(), "every record signed: " + report.summary());
        assertTrue(acknowledged.size() >= 250, "the child acknowledged " + acknowledged.size() + " records");
    }

    private String stderr() {
        try {
            return Files.readString(dir.resolve("child.err"));
        } catch (java.io.IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    private static Map<Long, String> acks(ConcurrentLinkedQueue<String> lines) {
        Map<Long, String> acks = new HashMap<>();
        for (String line : lines) {
            String[] parts = line.split(" ");
            if (parts.length == 3 && parts[0].equals("ACK") && parts[2].length() == 64) {
                acks.put(Long.parseLong(parts[1]), parts[2]);
            }
        }
        return acks;
    }

    private static Map<Long, String> stored(TestBackend db) throws Exception {
        Map<Long, String> stored = new HashMap<>();
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT seq, hash FROM audit_record")) {
            while (rs.next()) {
                stored.put(rs.getLong(1), HexFormat.of().formatHex(rs.getBytes(2)));
            }
        }
        return stored;
    }

    /** The instance holding an unexpired signer's lease, if any. */
    private static Optional<String> signer(TestBackend db) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT instance FROM audit_signer WHERE lease_until > clock_timestamp()")) {
            return rs.next() ? Optional.of(rs.getString(1)) : Optional.empty();
        }
    }

    private static long signedUpTo(TestBackend db) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoint")) {
            rs.next();
            return rs.getLong(1);
        }
    }
}
