package io.tpmphone.tpm;

import io.tpmphone.attestation.PcrValues;

/**
 * A quote as the TPM produced it: the {@code TPMS_ATTEST} bytes that were signed, the {@code TPMT_SIGNATURE}, and
 * the PCR values read right after the quote under the client's lock (so they are the values quoted, unless another
 * process extended in between; the verifier's digest check catches that). Byte arrays are copied in and out.
 */
public record TpmQuote(byte[] attest, byte[] signature, PcrValues pcrValues) {
    public TpmQuote {
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
