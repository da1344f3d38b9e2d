package io.tpmphone.attestation.internal;

import java.io.ByteArrayOutputStream;
import java.util.Objects;

/** Big-endian writer of TPM 2.0 marshalled data. Not thread-safe. */
public final class TpmWriter {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    public TpmWriter u8(int v) {
        if (v < 0 || v > 0xFF) {
            throw new IllegalArgumentException("u8 out of range: " + v);
        }
        out.write(v);
        return this;
    }

    public TpmWriter u16(int v) {
        if (v < 0 || v > 0xFFFF) {
            throw new IllegalArgumentException("u16 out of range: " + v);
        }
        out.write(v >>> 8);
        out.write(v);
        return this;
    }

    /** Writes the low 32 bits of {@code v}. */
    public TpmWriter u32(long v) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            out.write((int) (v >>> shift));
        }
        return this;
    }

    public TpmWriter u64(long v) {
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.write((int) (v >>> shift));
        }
        return this;
    }

    public TpmWriter bytes(byte[] b) {
        out.writeBytes(Objects.requireNonNull(b, "bytes"));
        return this;
    }

    /** u16 size then the bytes. */
    public TpmWriter tpm2b(byte[] b) {
        Objects.requireNonNull(b, "bytes");
        u16(b.length);
        return bytes(b);
    }

    public byte[] toByteArray() {
        return out.toByteArray();
    }

    /** {@code v} as 4 big-endian bytes. */
    public static byte[] u32Bytes(long v) {
        return new TpmWriter().u32(v).toByteArray();
    }

    /** {@code v} as 2 big-endian bytes. */
    public static byte[] u16Bytes(int v) {
        return new TpmWriter().u16(v).toByteArray();
    }

    /** Concatenation of {@code parts}. */
    public static byte[] concat(byte[]... parts) {
        TpmWriter w = new TpmWriter();
        for (byte[] p : parts) {
            w.bytes(p);
        }
        return w.toByteArray();
    }
}
