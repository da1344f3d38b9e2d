package io.tpmphone.server.audit;

import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.security.Signature;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Map;

/** Keys, entries and a raw JDBC tamperer for the audit tests. */
final class AuditTestSupport {
    private AuditTestSupport() {
    }

    static KeyPair ecKeyPair() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        return generator.generateKeyPair();
    }

    static AuditEntry entry(int i) {
        return AuditEntry.of(AuditEventType.APPRAISAL, "host-" + (i % 7), i % 5 == 0 ? "REFUSED" : "MEASURED",
                Map.of("evidenceSha256", "ab".repeat(32), "i", i, "checks", Map.of("z", true, "a", "ok")));
    }

    static void fill(AuditLog log, int n) throws AuditException {
        for (int i = 1; i <= n; i++) {
            log.append(entry(i));
        }
    }

    /** Runs SQL on the database with a plain connection, as an attacker with file access would. */
    static void tamper(Path db, String... sql) throws SQLException {
        try (Connection connection = DriverManager.getConnection("jdbc:sqlite:" + db.toAbsolutePath());
                Statement statement = connection.createStatement()) {
            for (String s : sql) {
                statement.execute(s);
            }
        }
    }

    /** Removes the signed head with its table, so the log looks like one written before the signed head. */
    static final String DROP_HEAD = "DROP TABLE audit_head";

    /**
     * Re-signs the head at record {@code seq}, dated {@code millis}, over the checkpoints now in the database: what
     * a server that stalled after signing it would have left (or an attacker holding the signing key).
     */
    static void signHead(Path db, KeyPair keys, long seq, long millis, long refreshMillis) throws Exception {
        try (Connection connection = DriverManager.getConnection("jdbc:sqlite:" + db.toAbsolutePath())) {
            List<AuditCheckpoint> checkpoints = AuditDatabase.checkpoints(connection);
            byte[] digest = checkpoints.isEmpty() ? new byte[32] : checkpoints.get(checkpoints.size() - 1).digest();
            byte[] hash = new byte[32];
            if (seq > 0) {
                try (PreparedStatement query = connection.prepareStatement(
                        "SELECT hash FROM audit_record WHERE seq = ?")) {
                    query.setLong(1, seq);
                    try (ResultSet rows = query.executeQuery()) {
                        rows.next();
                        hash = rows.getBytes(1);
                    }
                }
            }
            Signature signer = Signature.getInstance("SHA256withECDSA");
            signer.initSign(keys.getPrivate());
            signer.update(AuditEncoding.headSignedData(seq, hash, millis, checkpoints.size(), digest, refreshMillis,
                    false));
            try (Statement statement = connection.createStatement()) {
                statement.execute("DROP TRIGGER IF EXISTS audit_head_forward_only");
            }
            try (PreparedStatement update = connection.prepareStatement("UPDATE audit_head SET seq = ?, hash = ?, "
                    + "ts_millis = ?, checkpoints = ?, checkpoint_digest = ?, refresh_millis = ?, signature = ?, "
                    + "closed = 0 WHERE id = 1")) {
                update.setLong(1, seq);
                update.setBytes(2, hash);
                update.setLong(3, millis);
                update.setLong(4, checkpoints.size());
                update.setBytes(5, digest);
                update.setLong(6, refreshMillis);
                update.setBytes(7, signer.sign());
                update.executeUpdate();
            }
        }
    }

    static final String DROP_TRIGGERS[] = {
        "DROP TRIGGER IF EXISTS audit_record_no_update",
        "DROP TRIGGER IF EXISTS audit_record_no_delete",
        "DROP TRIGGER IF EXISTS audit_record_append_continues_chain",
        "DROP TRIGGER IF EXISTS audit_checkpoint_no_update",
        "DROP TRIGGER IF EXISTS audit_checkpoint_no_delete",
        "DROP TRIGGER IF EXISTS audit_checkpoint_append_in_order",
    };

    static String[] withTriggersDropped(String... sql) {
        String[] all = new String[DROP_TRIGGERS.length + sql.length];
        System.arraycopy(DROP_TRIGGERS, 0, all, 0, DROP_TRIGGERS.length);
        System.arraycopy(sql, 0, all, DROP_TRIGGERS.length, sql.length);
        return all;
    }
}
