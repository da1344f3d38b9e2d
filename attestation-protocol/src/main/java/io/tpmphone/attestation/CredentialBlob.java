package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.TpmWriter;
import java.util.Arrays;
import java.util.Objects;

/**
 * The output of {@link MakeCredential}: what the attester passes to TPM2_ActivateCredential.
 *
 * @param integrityHmac the outer HMAC over {@code encIdentity || objectName}
 * @param encIdentity the AES-CFB encrypted {@code TPM2B_DIGEST} credential
 * @param encryptedSecret the {@code TPM2B_ENCRYPTED_SECRET} buffer (without its size): the OAEP ciphertext of
 *     the seed (RSA EK) or the marshalled ephemeral {@code TPMS_ECC_POINT} (ECC EK)
 */
public record CredentialBlob(byte[] integrityHmac, byte[] encIdentity, byte[] encryptedSecret) {
    /** Header magic of tpm2-tools credential files. */
    public static final int TPM2_TOOLS_MAGIC = 0xBADCC0DE;

    public CredentialBlob {
        integrityHmac = Objects.requireNonNull(integrityHmac, "integrityHmac").clone();
        encIdentity = Objects.requireNonNull(encIdentity, "encIdentity").clone();
        encryptedSecret = Objects.requireNonNull(encryptedSecret, "encryptedSecret").clone();
    }

    @Override
    public byte[] integrityHmac() {
        return integrityHmac.clone();
    }

    @Override
    public byte[] encIdentity() {
        return encIdentity.clone();
    }

    @Override
    public byte[] encryptedSecret() {
        return encryptedSecret.clone();
    }

    /** The {@code TPM2B_ID_OBJECT} buffer (without its size): {@code TPM2B_DIGEST integrityHMAC || encIdentity}. */
    public byte[] idObject() {
        return new TpmWriter().tpm2b(integrityHmac).bytes(encIdentity).toByteArray();
    }

    /** The marshalled {@code TPM2B_ID_OBJECT}: {@code u16 size || idObject()}. */
    public byte[] credentialBlobTpm2b() {
        return new TpmWriter().tpm2b(idObject()).toByteArray();
    }

    /** The marshalled {@code TPM2B_ENCRYPTED_SECRET}: {@code u16 size || encryptedSecret}. */
    public byte[] encryptedSecretTpm2b() {
        return new TpmWriter().tpm2b(encryptedSecret).toByteArray();
    }

    /**
     * The file tpm2-tools {@code tpm2_makecredential -o} writes and {@code tpm2_activatecredential -i} reads:
     * u32 0xBADCC0DE, u32 version 1, {@code TPM2B_ID_OBJECT}, {@code TPM2B_ENCRYPTED_SECRET}. (Format taken from
     * tpm2-tools 5.x; not cross-checked against the tool in this module's tests.)
     */
    public byte[] toTpm2ToolsFormat() {
        return new TpmWriter().u32(TPM2_TOOLS_MAGIC & 0xFFFF_FFFFL).u32(1).bytes(credentialBlobTpm2b())
                .bytes(encryptedSecretTpm2b()).toByteArray();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CredentialBlob c && Arrays.equals(integrityHmac, c.integrityHmac)
                && Arrays.equals(encIdentity, c.encIdentity) && Arrays.equals(encryptedSecret, c.encryptedSecret);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(integrityHmac) * 961 + Arrays.hashCode(encIdentity) * 31
                + Arrays.hashCode(encryptedSecret);
    }

    @Override
    public String toString() {
        return "CredentialBlob[idObject " + idObject().length + " bytes, encryptedSecret " + encryptedSecret.length
                + " bytes]";
    }
}
