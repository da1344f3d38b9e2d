package io.tpmphone.softphone;

import java.util.Arrays;
import java.util.Objects;

/**
 * An SRTP master key and salt from the sealed keystore (through the agent broker), for one call. It owns its arrays:
 * {@link #close()} zero-fills them, and reading either after that throws, so a wiped key is never used by mistake.
 * {@link #toString()} shows only the lengths. Not thread-safe: one call's setup uses it and closes it at once.
 */
public final class SrtpKeyMaterial implements AutoCloseable {
    private final byte[] key;
    private final byte[] salt;
    private boolean closed;

    private SrtpKeyMaterial(byte[] key, byte[] salt) {
        this.key = key;
        this.salt = salt;
    }

    /** Takes ownership of both arrays (wiped by {@link #close()}). */
    public static SrtpKeyMaterial of(byte[] key, byte[] salt) {
        return new SrtpKeyMaterial(Objects.requireNonNull(key, "key"), Objects.requireNonNull(salt, "salt"));
    }

    /** The master key: the array itself, valid until {@link #close()} (copy it if it must outlive this). */
    public byte[] key() {
        checkOpen();
        return key;
    }

    /** The master salt: the array itself, valid until {@link #close()}. */
    public byte[] salt() {
        checkOpen();
        return salt;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("this SRTP key material was wiped (closed)");
        }
    }

    @Override
    public void close() {
        closed = true;
        Arrays.fill(key, (byte) 0);
        Arrays.fill(salt, (byte) 0);
    }

    @Override
    public String toString() {
        return "SrtpKeyMaterial[" + key.length + "+" + salt.length + " bytes]";
    }
}
