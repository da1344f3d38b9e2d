package io.tpmphone.server.audit;

import io.tpmphone.server.internal.ServerDatabase;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.time.Duration;
import java.util.Map;

/**
 * A server instance's audit writer in its own JVM (for {@link SharedAuditKillIT}): opens the shared chain in the
 * database {@code args[0]} with the key pair in {@code args[1]} (PKCS#8) and {@code args[2]} (X.509), prints
 * {@code STARTED}, then appends from four threads until it is killed, printing {@code ACK seq hash} once each append
 * has returned (is committed).
 */
public final class SharedAuditAppenderMain {
    private SharedAuditAppenderMain() {
    }

    public static void main(String[] args) throws Exception {
        KeyFactory ec = KeyFactory.getInstance("EC");
        KeyPair keys = new KeyPair(ec.generatePublic(new X509EncodedKeySpec(Files.readAllBytes(Path.of(args[2])))),
                ec.generatePrivate(new PKCS8EncodedKeySpec(Files.readAllBytes(Path.of(args[1])))));
        ServerDatabase db = ServerDatabase.postgresql(args[0], null, 4);
        AuditLog log = AuditLog.openShared(db.dataSource(), db.description(), AuditSigner.ecdsa(keys),
                SharedAuditKillIT.OPTIONS);
        System.out.println("STARTED");
        System.out.flush();
        for (int t = 0; t < 4; t++) {
            int thread = t;
            Thread appender = new Thread(() -> {
                for (int i = 0; ; i++) {
                    try {
                        AuditRecord r = log.append(AuditEntry.of(AuditEventType.APPRAISAL, "child-" + thread,
                                "MEASURED", Map.of("i", i)));
                        synchronized (System.out) {
                            System.out.println("ACK " + r.seq() + " " + r.hashHex());
                            System.out.flush();
                        }
                    } catch (AuditException e) {
                        System.err.println("append failed: " + e.getMessage());
                        return;
                    }
                }
            }, "child-appender-" + t);
            appender.start();
        }
        Thread.currentThread().join(Duration.ofMinutes(5).toMillis()); // until killed; bounded if it is not
        System.exit(2);
    }
}
