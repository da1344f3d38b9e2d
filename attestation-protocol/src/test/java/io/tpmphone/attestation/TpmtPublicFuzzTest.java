package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.security.InvalidKeyException;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of {@code TPMT_PUBLIC} (an AK, EK or TIK a host sends, a keystore authority an agent
 * receives): the parser, the name, and the JCA key behind it. Contract: a value, or
 * {@link MalformedStructureException} (parsing) / {@link InvalidKeyException} (no usable public key). Regression
 * inputs under {@code TpmtPublicFuzzTestInputs/}; fuzz with {@code ./tpmphone fuzz tpmt-public}.
 */
@Timeout(10)
class TpmtPublicFuzzTest {
    @BeforeAll
    static void theSwtpmKeysParse() throws Exception {
        // The harness reaches the key conversion: the swtpm's AKs yield keys, and their names are the TPM's.
        TpmtPublic ak = SwtpmSamples.publicArea("ak-ecc-p256.tpmt-public");
        assertEquals("000b7f6bf9fae9fbab86ab7ea625132f4bb0fd874acb40460c186af99f830aeb4195",
                java.util.HexFormat.of().formatHex(ak.name()), "the name tpm2_createak printed");
        assertEquals("EC", ak.toPublicKey().getAlgorithm());
        assertEquals("RSA", SwtpmSamples.publicArea("ak-rsa-2048.tpmt-public").toPublicKey().getAlgorithm());
    }

    @FuzzTest
    void parse(byte[] data) {
        TpmtPublic p;
        try {
            p = TpmtPublic.parse(data);
        } catch (MalformedStructureException e) {
            assertEquals("TPMT_PUBLIC", e.structure());
            return;
        }
        assertArrayEquals(data, p.encoded());
        byte[] name = p.name();
        assertEquals(2 + p.nameAlg().digestLength(), name.length, "name = nameAlg || digest");
        assertArrayEquals(p.nameAlg().digest(data), Arrays.copyOfRange(name, 2, name.length));
        try {
            assertEquals(p, TpmtPublic.parseTpm2b(p.encodedTpm2b()), "the TPM2B form parses to the same area");
        } catch (MalformedStructureException e) {
            throw new AssertionError("a parsed area's TPM2B form is refused: " + e.getMessage(), e);
        }
        p.attributes();
        p.symmetric();
        p.schemeHash();
        switch (p.type()) {
            case RSA -> assertTrue(p.rsaExponent().signum() > 0);
            case ECC -> assertTrue(p.curve().isPresent(), "an ECC area names its curve");
            default -> p.uniqueDigest();
        }
        try {
            byte[] spki = p.subjectPublicKeyInfo();
            assertTrue(p.toPem().startsWith("-----BEGIN PUBLIC KEY-----"));
            assertArrayEquals(p.toPublicKey().getEncoded(), spki, "our SPKI is the JCA key's");
        } catch (InvalidKeyException e) {
            // a template, an invalid point or modulus, or a type without a public key
        }
    }
}
