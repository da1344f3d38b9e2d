package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of the two documents the attestation server signs and others decode: the passport's
 * payload ({@link AttestationResult}, decoded by every relying phone after the JWS signature checks) and the keystore
 * approval ({@link KeystoreApproval}, decoded by the agent and fed to the TPM). Contract: a value that encodes back to
 * an equal value, or {@link MalformedStructureException}. Regression inputs under
 * {@code SignedDocumentsFuzzTestInputs/}; fuzz with {@code ./tpmphone fuzz passport} or {@code keystore-approval}.
 */
@Timeout(10)
class SignedDocumentsFuzzTest {
    @FuzzTest
    void passport(byte[] json) {
        AttestationResult r;
        try {
            r = AttestationResult.decode(json);
        } catch (MalformedStructureException e) {
            assertNotNull(e.field());
            return;
        }
        try {
            assertEquals(r, AttestationResult.decode(r.encode()), "a decoded result survives re-encoding");
        } catch (MalformedStructureException e) {
            throw new AssertionError("a decoded result's own encoding is refused: " + e.getMessage(), e);
        }
        assertTrue(r.expiresAt().isAfter(r.issuedAt()), "a result expires after it is issued: " + r);
        assertNotNull(r.level());
    }

    @FuzzTest
    void keystoreApproval(byte[] json) {
        KeystoreApproval a;
        try {
            a = KeystoreApproval.decode(json);
        } catch (MalformedStructureException e) {
            assertNotNull(e.field());
            return;
        }
        try {
            assertEquals(a, KeystoreApproval.decode(a.encode()), "a decoded approval survives re-encoding");
        } catch (MalformedStructureException e) {
            throw new AssertionError("a decoded approval's own encoding is refused: " + e.getMessage(), e);
        }
        assertEquals(32, a.signedDigest().length);
    }
}
