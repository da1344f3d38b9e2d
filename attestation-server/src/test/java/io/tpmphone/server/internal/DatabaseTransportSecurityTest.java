package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A database off this machine is reached over TLS that checks its certificate, or the operator says otherwise:
 * pgjdbc's default (sslmode=prefer) falls back to plaintext and checks nothing, and whoever writes to the database
 * decides the policy and the TPMs' rollback state.
 */
@Timeout(10)
class DatabaseTransportSecurityTest {
    @Test
    void aRemoteDatabaseWithoutSslmode_isRefused_namingTheFix() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ServerDatabase.requirePostgresqlUrl("jdbc:postgresql://db.example:5432/tpmphone?user=tp"));
        assertTrue(e.getMessage().contains("sslmode=verify-full"), e.getMessage());
    }

    @Test
    void sslmodesThatDoNotCheckTheCertificate_areRefused() {
        for (String mode : new String[] {"prefer", "allow", "require"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ServerDatabase.requirePostgresqlUrl("jdbc:postgresql://db.example/tp?sslmode=" + mode),
                    mode);
            assertTrue(e.getMessage().contains("does not check"), e.getMessage());
        }
    }

    @Test
    void verifiedTls_anExplicitDisable_andLoopback_areAccepted() {
        assertDoesNotThrow(() -> ServerDatabase.requirePostgresqlUrl(
                "jdbc:postgresql://db.example:5432/tp?user=tp&sslmode=verify-full&sslrootcert=/etc/tp/ca.pem"));
        assertDoesNotThrow(() -> ServerDatabase.requirePostgresqlUrl("jdbc:postgresql://db.example/tp?sslmode=disable"));
        assertDoesNotThrow(() -> ServerDatabase.requirePostgresqlUrl("jdbc:postgresql://127.0.0.1:5433/tp?user=x"));
        assertDoesNotThrow(() -> ServerDatabase.requirePostgresqlUrl("jdbc:postgresql://localhost/tp"));
        assertDoesNotThrow(() -> ServerDatabase.requirePostgresqlUrl("jdbc:postgresql://[::1]:5432/tp"));
        assertThrows(IllegalArgumentException.class, () -> ServerDatabase.requirePostgresqlUrl(
                "jdbc:postgresql://127.0.0.1,db.example/tp"), "one remote host among several needs sslmode too");
    }
}
