package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyPair;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Export version 4: the checkpoint key carried as PEM, so the in-browser verifier needs one file. */
@Timeout(60)
class AuditExportKeyTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    Path db;
    KeyPair keys;

    @BeforeEach
    void setUp() throws Exception {
        db = dir.resolve("audit.db");
        keys = ecKeyPair();
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys),
                AuditLog.Options.builder().checkpointEvery(10).build())) {
            fill(log, 25);
        }
    }

    private byte[] export(Optional<java.security.PublicKey> key) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (AuditReader reader = AuditReader.open(db)) {
            reader.exportJson(out, key);
        }
        return out.toByteArray();
    }

    private static VerificationReport verify(byte[] export, KeyPair keys) throws AuditException {
        return AuditVerifier.verifyExport(new ByteArrayInputStream(export), Optional.of(keys.getPublic()));
    }

    @Test
    void anExportWithTheKey_carriesItAsPem_andVerifies() throws Exception {
        byte[] export = export(Optional.of(keys.getPublic()));
        ObjectNode node = (ObjectNode) JSON.readTree(export);
        assertEquals(4, node.get("version").asInt());
        assertEquals(AuditVerifier.publicKeyPem(keys.getPublic()), node.get("publicKey").asText());
        VerificationReport report = verify(export, keys);
        assertTrue(report.intact(), report.summary());
        assertEquals(25, report.headSeq());
    }

    @Test
    void anExportWithoutAKey_hasNoPublicKeyField_andVerifies() throws Exception {
        byte[] export = export(Optional.empty());
        assertTrue(!JSON.readTree(export).has("publicKey"), new String(export, StandardCharsets.UTF_8));
        assertTrue(verify(export, keys).intact());
    }

    @Test
    void aKeyThatDidNotSignTheLog_isRefusedWhenExporting() throws Exception {
        KeyPair other = ecKeyPair();
        AuditException e = assertThrows(AuditException.class, () -> export(Optional.of(other.getPublic())));
        assertEquals(AuditException.Code.KEY_MISMATCH, e.code());
        assertTrue(e.getMessage().contains("did not sign this log"), e.getMessage());
    }

    @Test
    void theCarriedKey_isNeverTrusted_theGivenKeyDecides() throws Exception {
        KeyPair other = ecKeyPair();
        VerificationReport report = verify(export(Optional.of(keys.getPublic())), other);
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_KEY_MISMATCH,
                report.firstProblem().orElseThrow().kind(), report.summary());
    }

    @Test
    void aPublicKeyInAnOlderVersion_orNotAKey_isMalformed() throws Exception {
        ObjectNode node = (ObjectNode) JSON.readTree(export(Optional.of(keys.getPublic())));
        node.put("version", 3);
        AuditException old = assertThrows(AuditException.class, () -> verify(JSON.writeValueAsBytes(node), keys));
        assertEquals(AuditException.Code.MALFORMED_EXPORT, old.code());
        assertTrue(old.getMessage().contains("cannot hold a \"publicKey\""), old.getMessage());
        node.put("version", 4);
        node.put("publicKey", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        AuditException notKey = assertThrows(AuditException.class,
                () -> verify(JSON.writeValueAsBytes(node), keys));
        assertEquals(AuditException.Code.MALFORMED_EXPORT, notKey.code());
        assertTrue(notKey.getMessage().contains("\"publicKey\" is not an ECDSA public key"), notKey.getMessage());
    }
}
