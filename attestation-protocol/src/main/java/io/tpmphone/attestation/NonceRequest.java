package io.tpmphone.attestation;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * A host's request for an appraisal nonce, which it signs with its attestation key to prove it holds the enrolled
 * AK (docs/attestation.md, "Nonce requests"). Immutable and thread-safe.
 *
 * <p>Canonical encoding, the bytes the AK signs (integers big-endian, as in TPM structures):
 * <pre>
 *   "tpmphone-nonce-request-v1" 0x00      26 bytes, domain separation
 *   UINT16 n, akId as n bytes of ASCII    the hex AK name the server enrolled
 *   UINT64 requestedAt                    milliseconds since 1970-01-01T00:00:00Z
 * </pre>
 * The TPM signs {@code H(encoding)} with the key's scheme hash (SHA-256 for our AK): since the AK is a restricted
 * key, the digest comes with a TPM2_Hash ticket, which the TPM only issues for data that does not start with
 * {@code TPM_GENERATED_VALUE} — so a signed nonce request can never pass for a quote or a certification, and a quote
 * never for a nonce request (the label starts with {@code 't'}, not {@code 0xff}).
 *
 * <p>Freshness is not this type's business: the server refuses a {@code requestedAt} more than 5 min behind or 30 s
 * ahead of its clock, and one it accepted for the AK already or not after the AK's newest accepted request.
 */
public record NonceRequest(String akId, long requestedAt) {
    /** The domain-separation label that starts every encoding, followed by one zero byte. */
    public static final String LABEL = "tpmphone-nonce-request-v1";
    /** AK ids are hex AK names: a SHA-256 name is 68 characters; leave room for SHA-512 names. */
    public static final int MAX_AK_ID_LENGTH = 200;

    public NonceRequest {
        Objects.requireNonNull(akId, "akId");
        if (akId.isEmpty() || akId.length() > MAX_AK_ID_LENGTH) {
            throw new IllegalArgumentException("akId must be 1.." + MAX_AK_ID_LENGTH + " characters, got "
                    + akId.length());
        }
        for (int i = 0; i < akId.length(); i++) {
            char c = akId.charAt(i);
            if (c < 0x21 || c > 0x7e) {
                throw new IllegalArgumentException("akId must be printable ASCII; character " + i + " is U+"
                        + String.format("%04X", (int) c));
            }
        }
        if (requestedAt < 0) {
            throw new IllegalArgumentException("requestedAt must be milliseconds since the epoch, got " + requestedAt);
        }
    }

    /** The canonical encoding (a fresh copy). */
    public byte[] encoded() {
        byte[] label = LABEL.getBytes(StandardCharsets.US_ASCII);
        byte[] id = akId.getBytes(StandardCharsets.US_ASCII);
        ByteArrayOutputStream out = new ByteArrayOutputStream(label.length + 1 + 2 + id.length + 8);
        out.writeBytes(label);
        out.write(0);
        out.write(id.length >>> 8);
        out.write(id.length);
        out.writeBytes(id);
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.write((int) (requestedAt >>> shift));
        }
        return out.toByteArray();
    }
}
