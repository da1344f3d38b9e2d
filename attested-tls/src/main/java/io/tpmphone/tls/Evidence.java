package io.tpmphone.tls;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * The evidence in the end-entity {@code CertificateEntry}'s extension {@link #EXTENSION_TYPE}: a TPM 2.0 quote whose qualifying data is the handshake {@link Binder}, the AK that signed
 * it, and the host's signed attestation result (its passport). Byte layout (docs/tls-attestation.md):
 *
 * <pre>
 * struct {
 *     uint8  version;                  // 1
 *     uint8  format;                   // 1 = TPM2 quote + passport
 *     opaque ak_public&lt;1..2^16-1&gt;;     // TPMT_PUBLIC of the AK
 *     opaque quote&lt;1..2^16-1&gt;;         // TPMS_ATTEST of TPM2_Quote, extraData = binder
 *     opaque signature&lt;1..2^16-1&gt;;     // TPMT_SIGNATURE of the quote by the AK
 *     opaque passport&lt;0..2^16-1&gt;;      // compact JWS (ASCII) of the attestation server's result; may be empty
 * } AttestationEvidence;
 * </pre>
 *
 * Immutable. Decoding is strict: lengths must match and nothing may trail.
 */
public record Evidence(byte format, byte[] akPublic, byte[] quote, byte[] signature, String passport) {
    /**
     * The CertificateEntry extension's code point: the same as {@code attestation_request}, as RFC 8446 §4.4.2 asks
     * of a server's CertificateEntry extensions (they correspond to ClientHello extensions, like status_request).
     */
    public static final int EXTENSION_TYPE = AttestationRequest.EXTENSION_TYPE;
    public static final int VERSION = 1;
    private static final int MAX_FIELD = 0xFFFF;

    public Evidence {
        akPublic = akPublic.clone();
        quote = quote.clone();
        signature = signature.clone();
        Objects.requireNonNull(passport, "passport");
        for (byte[] f : new byte[][] {akPublic, quote, signature}) {
            if (f.length < 1 || f.length > MAX_FIELD) {
                throw new IllegalArgumentException("evidence fields are 1..65535 bytes");
            }
        }
        if (passport.length() > MAX_FIELD || !StandardCharsets.US_ASCII.newEncoder().canEncode(passport)) {
            throw new IllegalArgumentException("a passport is at most 65535 ASCII characters");
        }
    }

    @Override
    public byte[] akPublic() {
        return akPublic.clone();
    }

    @Override
    public byte[] quote() {
        return quote.clone();
    }

    @Override
    public byte[] signature() {
        return signature.clone();
    }

    public byte[] encode() {
        byte[] p = passport.getBytes(StandardCharsets.US_ASCII);
        ByteArrayOutputStream out = new ByteArrayOutputStream(10 + akPublic.length + quote.length + signature.length
                + p.length);
        out.write(VERSION);
        out.write(format);
        for (byte[] f : new byte[][] {akPublic, quote, signature, p}) {
            out.write(f.length >>> 8);
            out.write(f.length);
            out.writeBytes(f);
        }
        return out.toByteArray();
    }

    public static Evidence decode(byte[] data) throws MalformedExtensionException {
        if (data == null) {
            throw new MalformedExtensionException("attestation_evidence is missing");
        }
        ByteBuffer b = ByteBuffer.wrap(data);
        try {
            int version = b.get() & 0xff;
            if (version != VERSION) {
                throw new MalformedExtensionException("attestation_evidence version " + version + " is not "
                        + VERSION, true);
            }
            byte format = b.get();
            if (format != AttestationRequest.FORMAT_TPM2_PASSPORT) {
                throw new MalformedExtensionException("attestation_evidence format " + (format & 0xff)
                        + " is unknown", true);
            }
            byte[] ak = field(b, "ak_public", 1);
            byte[] quote = field(b, "quote", 1);
            byte[] signature = field(b, "signature", 1);
            byte[] passport = field(b, "passport", 0);
            if (b.hasRemaining()) {
                throw new MalformedExtensionException("attestation_evidence has " + b.remaining()
                        + " trailing bytes");
            }
            for (byte c : passport) {
                if (c < 0x21 || c > 0x7e) {
                    throw new MalformedExtensionException("attestation_evidence passport is not a compact JWS",
                            true);
                }
            }
            return new Evidence(format, ak, quote, signature, new String(passport, StandardCharsets.US_ASCII));
        } catch (java.nio.BufferUnderflowException e) {
            throw new MalformedExtensionException("attestation_evidence is truncated (" + data.length + " bytes)");
        }
    }

    private static byte[] field(ByteBuffer b, String name, int min) throws MalformedExtensionException {
        int n = b.getShort() & 0xffff;
        if (n < min) {
            throw new MalformedExtensionException("attestation_evidence " + name + " is empty");
        }
        byte[] v = new byte[n];
        b.get(v);
        return v;
    }

    @Override
    public String toString() {
        return "Evidence[format " + format + ", quote " + quote.length + " bytes, passport "
                + (passport.isEmpty() ? "none" : passport.length() + " chars") + "]";
    }
}
