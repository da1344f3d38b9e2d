package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import java.nio.file.Path;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * An appraisal's registry writes on PostgreSQL are one transaction ({@link ServerDatabase#inOneTransaction}): the
 * reads and writes made inside it on the same thread, through {@link ServerDatabase#read} and
 * {@link ServerDatabase#transaction}, are invisible to other connections until it commits, and undone together if it
 * fails. Against a real PostgreSQL.
 */
@Timeout(120)
@ExtendWith(PostgresExtension.class)
class OneTransactionOnPostgresIT {
    @TempDir
    Path dir;

    private static long rows(ServerDatabase db) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT count(*) FROM one_tx_probe");
                 ResultSet rs = p.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        });
    }

    private static void insert(ServerDatabase db, boolean asTransaction, int v) throws SQLException {
        ServerDatabase.Work<Void> w = c -> {
            try (PreparedStatement p = c.prepareStatement("INSERT INTO one_tx_probe (v) VALUES (?)")) {
                p.setInt(1, v);
                p.executeUpdate();
            }
            return null;
        };
        if (asTransaction) {
            db.transaction(w);
        } else {
            db.read(w);
        }
    }

    @Test
    void nestedReadsAndTransactionsJoin_commitTogether_andRollBackTogether(TestBackend backend) throws Exception {
        try (ServerDatabase db = backend.open(dir.resolve("a"));
             ServerDatabase other = backend.open(dir.resolve("b"))) {
            db.read(c -> c.createStatement().execute("CREATE TABLE one_tx_probe (v integer)"));
            long seenInside = db.inOneTransaction(() -> {
                try {
                    insert(db, false, 1);
                    insert(db, true, 2);
                    assertEquals(2, rows(db), "this thread sees its own writes inside the transaction");
                    return rows(other);
                } catch (SQLException e) {
                    throw new IllegalStateException(e);
                }
            });
            assertEquals(0, seenInside, "another instance saw nothing before the commit: one transaction, not two"
                    + " autocommitted statements");
            assertEquals(2, rows(other), "both writes committed together");

            IllegalStateException failed = assertThrows(IllegalStateException.class, () -> db.inOneTransaction(() -> {
                try {
                    insert(db, false, 3);
                    insert(db, true, 4);
                } catch (SQLException e) {
                    throw new IllegalStateException(e);
                }
                throw new IllegalStateException("the appraisal failed after its writes");
            }));
            assertEquals("the appraisal failed after its writes", failed.getMessage());
            assertEquals(2, rows(other), "a failure undid both writes made inside the transaction");
            insert(db, false, 5);
            assertEquals(3, rows(other), "outside a transaction a statement commits on its own, as before");
        }
    }

    @Test
    void anAppraisalsLastAppraisalAndTpmState_areUndoneTogether_whenItFails(TestBackend backend) throws Exception {
        Registry registry = backend.registry(dir.resolve("r"), Clock.systemUTC());
        try {
            byte[] ek = new byte[] {0, 11, 1, 2, 3};
            registry.enroll(new Registry.Host("h1", ek, new byte[] {1}, new byte[] {2}, new byte[] {0, 11, 9},
                    new byte[] {3}, Instant.now().toString()));
            Instant now = Instant.now();
            assertThrows(IllegalStateException.class, () -> registry.inOneTransaction(() -> {
                assertTrue(registry.compareAndSetTpmState(ek, null, Registry.TpmState.next(null, 1, 0, 1000, null)));
                registry.recordAppraisal(new Registry.LastAppraisal("h1", IntegrityLevel.MEASURED, null, now,
                        now.plusSeconds(60)));
                throw new IllegalStateException("signing the result failed");
            }));
            assertTrue(registry.tpmState(ek).isEmpty(), "the TPM state's compare-and-set was rolled back");
            assertTrue(registry.lastAppraisal("h1").isEmpty(), "the last appraisal was rolled back");

            registry.inOneTransaction(() -> {
                assertTrue(registry.compareAndSetTpmState(ek, null, Registry.TpmState.next(null, 1, 0, 1000, null)));
                registry.recordAppraisal(new Registry.LastAppraisal("h1", IntegrityLevel.MEASURED, null, now,
                        now.plusSeconds(60)));
                return null;
            });
            assertEquals(1000, registry.tpmState(ek).orElseThrow().clock(), "committed: the TPM state");
            assertEquals(IntegrityLevel.MEASURED, registry.lastAppraisal("h1").orElseThrow().level(),
                    "committed: the last appraisal");
        } finally {
            registry.close();
        }
    }
}
