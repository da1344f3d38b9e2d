package io.tpmphone.tls;

import java.util.Arrays;
import javax.security.auth.Destroyable;

/**
 * The SRTP master keys and salts of one DTLS-SRTP association (RFC 5764 §4.2), from the exporter label
 * {@code EXTRACTOR-dtls_srtp}: {@code client_write_key | server_write_key | client_write_salt | server_write_salt}.
 * "Local" is what this side encrypts with, "remote" what it decrypts with. They exist only after a handshake whose
 * CertificateVerify or ServerKeyExchange the TIK signed. {@link #destroy()} wipes them; the accessors return copies.
 */
public final class SrtpKeys implements Destroyable {
    /** RFC 5764 §4.1.2: SRTP_AES128_CM_HMAC_SHA1_80. */
    public static final int SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001;
    static final String EXPORTER_LABEL = "EXTRACTOR-dtls_srtp";
    static final int KEY_LENGTH = 16;
    static final int SALT_LENGTH = 14;

    private final int profile;
    private final byte[] localKey;
    private final byte[] localSalt;
    private final byte[] remoteKey;
    private final byte[] remoteSalt;
    private volatile boolean destroyed;

    private SrtpKeys(int profile, byte[] localKey, byte[] localSalt, byte[] remoteKey, byte[] remoteSalt) {
        this.profile = profile;
        this.localKey = localKey;
        this.localSalt = localSalt;
        this.remoteKey = remoteKey;
        this.remoteSalt = remoteSalt;
    }

    /** Splits the exporter output; {@code weAreClient} says which half is ours. Wipes {@code material}. */
    static SrtpKeys fromExporter(int profile, byte[] material, boolean weAreClient) {
        if (profile != SRTP_AES128_CM_HMAC_SHA1_80) {
            throw new IllegalArgumentException("unsupported SRTP protection profile " + profile);
        }
        if (material.length != 2 * (KEY_LENGTH + SALT_LENGTH)) {
            throw new IllegalArgumentException("the SRTP exporter output is " + 2 * (KEY_LENGTH + SALT_LENGTH)
                    + " bytes");
        }
        try {
            byte[] clientKey = Arrays.copyOfRange(material, 0, KEY_LENGTH);
            byte[] serverKey = Arrays.copyOfRange(material, KEY_LENGTH, 2 * KEY_LENGTH);
            byte[] clientSalt = Arrays.copyOfRange(material, 2 * KEY_LENGTH, 2 * KEY_LENGTH + SALT_LENGTH);
            byte[] serverSalt = Arrays.copyOfRange(material, 2 * KEY_LENGTH + SALT_LENGTH, material.length);
            return weAreClient ? new SrtpKeys(profile, clientKey, clientSalt, serverKey, serverSalt)
                    : new SrtpKeys(profile, serverKey, serverSalt, clientKey, clientSalt);
        } finally {
            Arrays.fill(material, (byte) 0);
        }
    }

    public int profile() {
        return profile;
    }

    public byte[] localKey() {
        return live(localKey);
    }

    public byte[] localSalt() {
        return live(localSalt);
    }

    public byte[] remoteKey() {
        return live(remoteKey);
    }

    public byte[] remoteSalt() {
        return live(remoteSalt);
    }

    private byte[] live(byte[] b) {
        if (destroyed) {
            throw new IllegalStateException("these SRTP keys were destroyed");
        }
        return b.clone();
    }

    @Override
    public void destroy() {
        destroyed = true;
        for (byte[] b : new byte[][] {localKey, localSalt, remoteKey, remoteSalt}) {
            Arrays.fill(b, (byte) 0);
        }
    }

    @Override
    public boolean isDestroyed() {
        return destroyed;
    }

    @Override
    public String toString() {
        return "SrtpKeys[profile " + profile + (destroyed ? ", destroyed" : "") + "]";
    }
}
