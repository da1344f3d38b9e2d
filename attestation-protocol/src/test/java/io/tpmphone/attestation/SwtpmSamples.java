package io.tpmphone.attestation;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * Evidence a real swtpm produced with tpm2-tools (see {@code swtpm/README.md} next to the files): an ECC P-256 and an
 * RSA-2048 AK, their quotes and signatures, a TPM2_Certify of an ECC key, EKs, a sealed object, and a measured launch's
 * event log written by the agent. The fuzz tests verify these first (so a harness that stopped reaching the verifier
 * fails) and seed their corpora with them.
 */
final class SwtpmSamples {
    /** The qualifying data {@code quote-ecc} was made over ({@code tpm2_quote -q}). */
    static final byte[] QUOTE_NONCE = HexFormat.of().parseHex(
            "0011223344556677889900112233445566778899001122334455667788990011");
    /** The PCRs {@code quote-ecc} covers. */
    static final PcrSelection QUOTE_SELECTION = PcrSelection.parse("sha256:0-7,14");
    /** PCR 14 after {@code tpm2_pcrextend 14:sha256=SHA-256("tpmphone")}; PCRs 0-7 are zero on swtpm. */
    static final byte[] QUOTE_PCR14 = HexFormat.of().parseHex(
            "3350cbd0d0149f32ebd05bfa8c4fef666e4e9e0c9b7cfae90a235dc02b6b7dd2");

    private SwtpmSamples() {
    }

    static byte[] bytes(String name) {
        try (InputStream in = SwtpmSamples.class.getResourceAsStream("swtpm/" + name)) {
            if (in == null) {
                throw new IllegalStateException("test resource swtpm/" + name + " is missing");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static TpmtPublic publicArea(String name) {
        try {
            return TpmtPublic.parse(bytes(name));
        } catch (MalformedStructureException e) {
            throw new IllegalStateException("swtpm/" + name + " does not parse: " + e.getMessage(), e);
        }
    }

    /** The values {@code quote-ecc} was made over, in selection order. */
    static PcrValues quotePcrValues() {
        List<byte[]> values = new ArrayList<>();
        for (int pcr : QUOTE_SELECTION.indices()) {
            values.add(pcr == 14 ? QUOTE_PCR14.clone() : new byte[32]);
        }
        return PcrValues.of(QUOTE_SELECTION, values);
    }

    static boolean same(byte[] a, byte[] b) {
        return Arrays.equals(a, b);
    }
}
