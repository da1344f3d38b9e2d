package io.tpmphone.tpm;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * A TPM object kept outside the TPM: its {@code TPMT_PUBLIC} and its {@code TPM2B_PRIVATE} contents, which only the
 * parent key that created it can load. Safe to store: the private part is encrypted and integrity-protected by the
 * parent. {@link #toBytes()} / {@link #fromBytes(byte[])} give a simple length-prefixed file format.
 */
public record TpmObjectBlob(byte[] publicArea, byte[] privateArea) {
    private static final int MAGIC = 0x54504f42; // "TPOB"

    public TpmObjectBlob {
        publicArea = publicArea.clone();
        privateArea = privateArea.clone();
        if (publicArea.length == 0 || publicArea.length > 0xffff || privateArea.length == 0
                || privateArea.length > 0xffff) {
            throw new IllegalArgumentException("TPM object blob parts must be 1..65535 bytes, got public "
                    + publicArea.length + " and private " + privateArea.length);
        }
    }

    @Override
    public byte[] publicArea() {
        return publicArea.clone();
    }

    @Override
    public byte[] privateArea() {
        return privateArea.clone();
    }

    public byte[] toBytes() {
        return ByteBuffer.allocate(8 + publicArea.length + privateArea.length).putInt(MAGIC)
                .putShort((short) publicArea.length).put(publicArea)
                .putShort((short) privateArea.length).put(privateArea).array();
    }

    /** @throws IllegalArgumentException if {@code data} is not exactly one blob */
    public static TpmObjectBlob fromBytes(byte[] data) {
        ByteBuffer b = ByteBuffer.wrap(data);
        try {
            if (b.getInt() != MAGIC) {
                throw new IllegalArgumentException("not a TPM object blob (wrong magic)");
            }
            byte[] pub = new byte[b.getShort() & 0xffff];
            b.get(pub);
            byte[] priv = new byte[b.getShort() & 0xffff];
            b.get(priv);
            if (b.hasRemaining()) {
                throw new IllegalArgumentException("TPM object blob has " + b.remaining() + " trailing bytes");
            }
            return new TpmObjectBlob(pub, priv);
        } catch (java.nio.BufferUnderflowException e) {
            throw new IllegalArgumentException("TPM object blob is truncated (" + data.length + " bytes)", e);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TpmObjectBlob && Arrays.equals(publicArea, ((TpmObjectBlob) o).publicArea)
                && Arrays.equals(privateArea, ((TpmObjectBlob) o).privateArea);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(publicArea) + Arrays.hashCode(privateArea);
    }

    @Override
    public String toString() {
        return "TpmObjectBlob[public=" + publicArea.length + " bytes, private=" + privateArea.length + " bytes]";
    }
}
