package io.tpmphone.server.audit;

import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
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
