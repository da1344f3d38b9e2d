package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.TpmClient;
import java.util.Arrays;
import java.util.HexFormat;
import tss.tpm.TPM2B_DIGEST_KEYEDHASH;
import tss.tpm.TPM2B_PUBLIC_KEY_RSA;
import tss.tpm.TPMA_OBJECT;
import tss.tpm.TPMS_ECC_PARMS;
import tss.tpm.TPMS_ECC_POINT;
import tss.tpm.TPMS_KEYEDHASH_PARMS;
import tss.tpm.TPMS_NULL_ASYM_SCHEME;
import tss.tpm.TPMS_NULL_KDF_SCHEME;
import tss.tpm.TPMS_NULL_SCHEME_KEYEDHASH;
import tss.tpm.TPMS_RSA_PARMS;
import tss.tpm.TPMS_SIG_SCHEME_ECDSA;
import tss.tpm.TPMT_PUBLIC;
import tss.tpm.TPMT_SYM_DEF_OBJECT;
import tss.tpm.TPM_ALG_ID;
import tss.tpm.TPM_ECC_CURVE;

/** The public-area templates we create keys from. Each returns a fresh object (TSS.Java structures are mutable). */
public final class Templates {

    /**
     * {@code PolicySecret(TPM_RH_ENDORSEMENT)} — the authPolicy of the TCG EK templates (EK Credential Profile
     * §B.3.3), so that only the endorsement hierarchy's authorization can use the EK.
     */
    private static final byte[] EK_POLICY = HexFormat.of()
            .parseHex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");

    private Templates() {
    }

    /** TCG EK Credential Profile template L-1 (RSA-2048) or L-2 (ECC P-256), with the all-zero unique field. */
    public static TPMT_PUBLIC ek(EkType type) {
        TPMA_OBJECT attributes = new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent,
                TPMA_OBJECT.sensitiveDataOrigin, TPMA_OBJECT.adminWithPolicy, TPMA_OBJECT.restricted,
                TPMA_OBJECT.decrypt);
        TPMT_SYM_DEF_OBJECT aes128cfb = new TPMT_SYM_DEF_OBJECT(TPM_ALG_ID.AES, 128, TPM_ALG_ID.CFB);
        if (type == EkType.RSA_2048) {
            return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, EK_POLICY.clone(),
                    new TPMS_RSA_PARMS(aes128cfb, new TPMS_NULL_ASYM_SCHEME(), 2048, 0),
                    new TPM2B_PUBLIC_KEY_RSA(new byte[256]));
        }
        return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, EK_POLICY.clone(),
                new TPMS_ECC_PARMS(aes128cfb, new TPMS_NULL_ASYM_SCHEME(), TPM_ECC_CURVE.NIST_P256,
                        new TPMS_NULL_KDF_SCHEME()),
                new TPMS_ECC_POINT(new byte[32], new byte[32]));
    }

    /** TCG Provisioning Guidance SRK template: restricted decrypt storage key, noDA, empty auth. */
    public static TPMT_PUBLIC srk(TpmClient.StorageKeyType type) {
        TPMA_OBJECT attributes = new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent,
                TPMA_OBJECT.sensitiveDataOrigin, TPMA_OBJECT.userWithAuth, TPMA_OBJECT.noDA, TPMA_OBJECT.restricted,
                TPMA_OBJECT.decrypt);
        TPMT_SYM_DEF_OBJECT aes128cfb = new TPMT_SYM_DEF_OBJECT(TPM_ALG_ID.AES, 128, TPM_ALG_ID.CFB);
        if (type == TpmClient.StorageKeyType.RSA_2048) {
            return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, new byte[0],
                    new TPMS_RSA_PARMS(aes128cfb, new TPMS_NULL_ASYM_SCHEME(), 2048, 0),
                    new TPM2B_PUBLIC_KEY_RSA(new byte[256]));
        }
        return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, new byte[0],
                new TPMS_ECC_PARMS(aes128cfb, new TPMS_NULL_ASYM_SCHEME(), TPM_ECC_CURVE.NIST_P256,
                        new TPMS_NULL_KDF_SCHEME()),
                new TPMS_ECC_POINT(new byte[32], new byte[32]));
    }

    /** The attestation key: restricted ECC P-256 ECDSA-SHA256 signing key. */
    public static TPMT_PUBLIC attestationKey() {
        TPMA_OBJECT attributes = new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent,
                TPMA_OBJECT.sensitiveDataOrigin, TPMA_OBJECT.userWithAuth, TPMA_OBJECT.noDA, TPMA_OBJECT.restricted,
                TPMA_OBJECT.sign);
        return eccSigning(attributes, new byte[0]);
    }

    /** An unrestricted ECC P-256 ECDSA-SHA256 signing key; with a policy, only the policy authorizes it. */
    public static TPMT_PUBLIC signingKey(byte[] authPolicy) {
        TPMA_OBJECT attributes = authPolicy.length == 0
                ? new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent, TPMA_OBJECT.sensitiveDataOrigin,
                        TPMA_OBJECT.userWithAuth, TPMA_OBJECT.noDA, TPMA_OBJECT.sign)
                : new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent, TPMA_OBJECT.sensitiveDataOrigin,
                        TPMA_OBJECT.noDA, TPMA_OBJECT.sign);
        return eccSigning(attributes, authPolicy);
    }

    /**
     * A keyed-hash data object for sealing: fixed to this TPM and parent, noDA, and only its policy authorizes it —
     * for the user role (no userWithAuth) and the admin role (adminWithPolicy), so no empty password opens anything.
     */
    public static TPMT_PUBLIC sealedData(byte[] authPolicy) {
        TPMA_OBJECT attributes = new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent, TPMA_OBJECT.noDA,
                TPMA_OBJECT.adminWithPolicy);
        return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, authPolicy.clone(),
                new TPMS_KEYEDHASH_PARMS(new TPMS_NULL_SCHEME_KEYEDHASH()), new TPM2B_DIGEST_KEYEDHASH(new byte[0]));
    }

    /**
     * A keyed-hash data object opened by its authValue (a PIN): userWithAuth, and <em>not</em> noDA, so the TPM's
     * dictionary-attack protection counts wrong values; no authPolicy.
     */
    public static TPMT_PUBLIC passwordSealedData() {
        TPMA_OBJECT attributes = new TPMA_OBJECT(TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent,
                TPMA_OBJECT.userWithAuth);
        return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, new byte[0],
                new TPMS_KEYEDHASH_PARMS(new TPMS_NULL_SCHEME_KEYEDHASH()), new TPM2B_DIGEST_KEYEDHASH(new byte[0]));
    }

    /** Whether {@code actual} was made from {@code template}: everything but the unique field is equal. */
    public static boolean matches(TPMT_PUBLIC template, TPMT_PUBLIC actual) {
        TPMT_PUBLIC copy = TPMT_PUBLIC.fromBytes(actual.toBytes());
        copy.unique = template.unique;
        return Arrays.equals(copy.toBytes(), template.toBytes());
    }

    private static TPMT_PUBLIC eccSigning(TPMA_OBJECT attributes, byte[] authPolicy) {
        return new TPMT_PUBLIC(TPM_ALG_ID.SHA256, attributes, authPolicy.clone(),
                new TPMS_ECC_PARMS(new TPMT_SYM_DEF_OBJECT(TPM_ALG_ID.NULL, 0, TPM_ALG_ID.NULL), new TPMS_SIG_SCHEME_ECDSA(TPM_ALG_ID.SHA256),
                        TPM_ECC_CURVE.NIST_P256, new TPMS_NULL_KDF_SCHEME()),
                new TPMS_ECC_POINT(new byte[0], new byte[0]));
    }
}
