package io.tpmphone.tls;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Objects;

/**
 * The {@code attestation_request} TLS extension (private code point {@link #EXTENSION_TYPE}), sent in the
 * ClientHello by a client that attests and wants the server's evidence, and answered in EncryptedExtensions by a
 * server that attests. Byte layout (docs/tls-attestation.md), all lengths big-endian:
 *
 * <pre>
 * struct {
 *     uint8  version;                 // 1
 *     uint8  min_level;               // 0 FAILED .. 4 HARDENED: what the sender requires of the peer
 *     uint8  formats&lt;1..255&gt;;        // evidence formats the sender accepts (in EE: the one chosen)
 *     opaque nonce&lt;16..64&gt;;          // the sender's fresh nonce: the peer binds its evidence to it
 * } AttestationRequest;
 * </pre>
 *
 * Anything else — another version, a length that does not match, trailing bytes, an unknown level, a short nonce —
 * is a {@link MalformedExtensionException} and ends the handshake with {@code decode_error} or
 * {@code illegal_parameter}. Immutable.
 */
public record AttestationRequest(IntegrityLevel minLevel, byte[] formats, byte[] nonce) {
    /** Private-use extension code point (RFC 8446 §11: 65280-65535). */
    public static final int EXTENSION_TYPE = 0xFF70;
    /** The only version so far. */
    public static final int VERSION = 1;
    /** Evidence format 1: a TPM 2.0 quote over the binder with a signed attestation result (a passport). */
    public static final byte FORMAT_TPM2_PASSPORT = 1;
    public static final int MIN_NONCE = 16;
    public static final int MAX_NONCE = 64;

    public AttestationRequest {
        Objects.requireNonNull(minLevel, "minLevel");
        formats = formats.clone();
        nonce = nonce.clone();
        if (formats.length < 1 || formats.length > 255) {
            throw new IllegalArgumentException("1..255 formats");
        }
        if (nonce.length < MIN_NONCE || nonce.length > MAX_NONCE) {
            throw new IllegalArgumentException("a nonce is " + MIN_NONCE + ".." + MAX_NONCE + " bytes");
        }
    }

    @Override
    public byte[] formats() {
        return formats.clone();
    }

    @Override
    public byte[] nonce() {
        return nonce.clone();
    }

    /** Whether the sender accepts {@code format}. */
    public boolean accepts(byte format) {
        for (byte f : formats) {
            if (f == format) {
                return true;
            }
        }
        return false;
    }

    public byte[] encode() {
        ByteArrayOutputStream out = new ByteArrayOutputStream(4 + formats.length + nonce.length);
        out.write(VERSION);
        out.write(minLevel.rank());
        out.write(formats.length);
        out.writeBytes(formats);
        out.write(nonce.length);
        out.writeBytes(nonce);
        return out.toByteArray();
    }

    public static AttestationRequest decode(byte[] data) throws MalformedExtensionException {
        if (data == null) {
            throw new MalformedExtensionException("attestation_request is missing");
        }
        ByteBuffer b = ByteBuffer.wrap(data);
        try {
            int version = b.get() & 0xff;
            if (version != VERSION) {
                throw new MalformedExtensionException("attestation_request version " + version + " is not "
                        + VERSION, true);
            }
            int level = b.get() & 0xff;
            IntegrityLevel minLevel = Arrays.stream(IntegrityLevel.values()).filter(l -> l.rank() == level)
                    .findFirst().orElseThrow(() -> new MalformedExtensionException("attestation_request min_level "
                            + level + " is not 0..4", true));
            byte[] formats = new byte[b.get() & 0xff];
            b.get(formats);
            byte[] nonce = new byte[b.get() & 0xff];
            b.get(nonce);
            if (b.hasRemaining()) {
                throw new MalformedExtensionException("attestation_request has " + b.remaining()
                        + " trailing bytes");
            }
            if (formats.length == 0 || nonce.length < MIN_NONCE || nonce.length > MAX_NONCE) {
                throw new MalformedExtensionException("attestation_request needs at least one format and a "
                        + MIN_NONCE + ".." + MAX_NONCE + "-byte nonce", true);
            }
            return new AttestationRequest(minLevel, formats, nonce);
        } catch (java.nio.BufferUnderflowException e) {
            throw new MalformedExtensionException("attestation_request is truncated (" + data.length + " bytes)");
        }
    }
}
