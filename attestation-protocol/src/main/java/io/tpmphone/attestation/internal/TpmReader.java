package io.tpmphone.attestation.internal;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MalformedStructureException;
import java.util.Arrays;
import java.util.Objects;

/**
 * Bounds-checked big-endian reader of TPM 2.0 marshalled data (Part 2 §5). Every failure is a
 * {@link MalformedStructureException} naming the structure, the field and the offset. Not thread-safe; does not
 * copy the input (callers own it).
 */
public final class TpmReader {
    private final byte[] data;
    private final String structure;
    private int position;

    public TpmReader(byte[] data, String structure) {
        this.data = Objects.requireNonNull(data, "data");
        this.structure = Objects.requireNonNull(structure, "structure");
    }

    public String structure() {
        return structure;
    }

    public int offset() {
        return position;
    }

    public int remaining() {
        return data.length - position;
    }

    /** An exception for {@code field} at {@code offset}, for callers' own semantic checks. */
    public MalformedStructureException error(String field, int offset, String detail) {
        return new MalformedStructureException(structure, field, offset, detail);
    }

    private void need(int n, String field) throws MalformedStructureException {
        if (n > remaining()) {
            throw error(field, position, "truncated: need " + n + " byte(s), only " + remaining() + " left");
        }
    }

    public int u8(String field) throws MalformedStructureException {
        need(1, field);
        return data[position++] & 0xFF;
    }

    public int u16(String field) throws MalformedStructureException {
        need(2, field);
        int v = ((data[position] & 0xFF) << 8) | (data[position + 1] & 0xFF);
        position += 2;
        return v;
    }

    /** An unsigned 32-bit value. */
    public long u32(String field) throws MalformedStructureException {
        need(4, field);
        long v = 0;
        for (int i = 0; i < 4; i++) {
            v = (v << 8) | (data[position + i] & 0xFF);
        }
        position += 4;
        return v;
    }

    /** A 64-bit value (two's complement if above {@link Long#MAX_VALUE}). */
    public long u64(String field) throws MalformedStructureException {
        need(8, field);
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (data[position + i] & 0xFF);
        }
        position += 8;
        return v;
    }

    public byte[] bytes(int n, String field) throws MalformedStructureException {
        if (n < 0) {
            throw new IllegalArgumentException("negative length");
        }
        need(n, field);
        byte[] out = Arrays.copyOfRange(data, position, position + n);
        position += n;
        return out;
    }

    /** A {@code TPM2B}: u16 size then that many bytes, with {@code size <= maxSize}. */
    public byte[] tpm2b(String field, int maxSize) throws MalformedStructureException {
        int at = position;
        int size = u16(field + ".size");
        if (size > maxSize) {
            throw error(field + ".size", at, "size " + size + " exceeds the maximum " + maxSize);
        }
        return bytes(size, field);
    }

    /** A {@code TPMI_ALG_HASH}: u16 algorithm id that must be a supported hash. */
    public HashAlgorithm hashAlg(String field) throws MalformedStructureException {
        int at = position;
        int id = u16(field);
        try {
            return HashAlgorithm.fromTpmId(id);
        } catch (MalformedStructureException e) {
            throw new MalformedStructureException(structure, field, at,
                    String.format("unsupported hash algorithm 0x%04X; expected sha1 (0x0004), sha256 (0x000B), "
                            + "sha384 (0x000C) or sha512 (0x000D)", id), e);
        }
    }

    /** Rejects trailing bytes. */
    public void requireEnd() throws MalformedStructureException {
        if (remaining() != 0) {
            throw error("(end)", position, remaining() + " trailing byte(s) after the structure; expected none");
        }
    }
}
