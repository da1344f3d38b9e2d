package io.tpmphone.attestation;

import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Objects;
import javax.security.auth.Destroyable;

/**
 * Secret bytes (a credential, a seed, an unsealed value) held in a private copy. The content is reached only
 * through {@link #reveal()}, so every use is easy to find. {@link #destroy()} zero-fills the copy; any use after
 * that throws {@link IllegalStateException}. {@link #toString()} shows only the length.
 *
 * <p>Thread-safe; {@link #destroy()} racing with a {@link #reveal()} yields either the content or an exception.
 */
public final class SecretBytes implements Destroyable {
    private final byte[] bytes;
    private boolean destroyed;

    private SecretBytes(byte[] bytes) {
        this.bytes = bytes;
    }

    /** A secret holding a copy of {@code bytes}; the caller should wipe its own array when done. */
    public static SecretBytes copyOf(byte[] bytes) {
        return new SecretBytes(Objects.requireNonNull(bytes, "bytes").clone());
    }

    /** A copy of the secret content. The caller owns the copy and should wipe it after use. */
    public synchronized byte[] reveal() {
        checkNotDestroyed();
        return bytes.clone();
    }

    public synchronized int length() {
        checkNotDestroyed();
        return bytes.length;
    }

    /** Whether both secrets hold the same bytes, in time independent of where they differ. */
    public boolean equalsConstantTime(SecretBytes other) {
        Objects.requireNonNull(other, "other");
        byte[] mine = reveal();
        byte[] theirs = other.reveal();
        try {
            return MessageDigest.isEqual(mine, theirs);
        } finally {
            Arrays.fill(mine, (byte) 0);
            Arrays.fill(theirs, (byte) 0);
        }
    }

    /** Zero-fills the content; later use throws {@link IllegalStateException}. Idempotent. */
    @Override
    public synchronized void destroy() {
        Arrays.fill(bytes, (byte) 0);
        destroyed = true;
    }

    @Override
    public synchronized boolean isDestroyed() {
        return destroyed;
    }

    private void checkNotDestroyed() {
        if (destroyed) {
            throw new IllegalStateException("SecretBytes used after destroy()");
        }
    }

    @Override
    public synchronized String toString() {
        return destroyed ? "SecretBytes[destroyed]" : "SecretBytes[" + bytes.length + " bytes]";
    }
}
