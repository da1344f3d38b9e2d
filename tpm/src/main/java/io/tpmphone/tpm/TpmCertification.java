package io.tpmphone.tpm;

/** The output of {@code TPM2_Certify}: the signed {@code TPMS_ATTEST} bytes and the {@code TPMT_SIGNATURE}. */
public record TpmCertification(byte[] attest, byte[] signature) {
    public TpmCertification {
        attest = attest.clone();
        signature = signature.clone();
    }

    @Override
    public byte[] attest() {
        return attest.clone();
    }

    @Override
    public byte[] signature() {
        return signature.clone();
    }
}
