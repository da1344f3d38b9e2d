package io.tpmphone.keystore;

import io.tpmphone.attestation.SecretBytes;
import java.util.Objects;
import javax.security.auth.Destroyable;

/**
 * One call's SRTP master key and master salt. {@link #toString()} shows only the suite; {@link #destroy()} zero-fills
 * both, after which they throw on use. Hand the bytes to the SRTP engine and destroy this right after.
 *
 * <p>Thread-safe (the parts are {@link SecretBytes}).
 */
public final class SrtpKeys implements Destroyable {
    private final SrtpSuite suite;
    private final SecretBytes masterKey;
    private final SecretBytes masterSalt;

    /** Takes ownership of both parts, which must have the suite's lengths. */
    public SrtpKeys(SrtpSuite suite, SecretBytes masterKey, SecretBytes masterSalt) {
        this.suite = Objects.requireNonNull(suite, "suite");
        this.masterKey = Objects.requireNonNull(masterKey, "masterKey");
        this.masterSalt = Objects.requireNonNull(masterSalt, "masterSalt");
        if (masterKey.length() != suite.keyLength() || masterSalt.length() != suite.saltLength()) {
            throw new IllegalArgumentException(suite + " needs a " + suite.keyLength() + "-byte key and a "
                    + suite.saltLength() + "-byte salt");
        }
    }

    public SrtpSuite suite() {
        return suite;
    }

    /** The master key ({@link SrtpSuite#keyLength()} bytes). */
    public SecretBytes masterKey() {
        return masterKey;
    }

    /** The master salt ({@link SrtpSuite#saltLength()} bytes). */
    public SecretBytes masterSalt() {
        return masterSalt;
    }

    @Override
    public void destroy() {
        masterKey.destroy();
        masterSalt.destroy();
    }

    @Override
    public boolean isDestroyed() {
        return masterKey.isDestroyed() && masterSalt.isDestroyed();
    }

    @Override
    public String toString() {
        return "SrtpKeys[" + suite + (isDestroyed() ? ", destroyed]" : "]");
    }
}
