package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.BrokerRefusedException;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.SrtpKeyMaterial;
import java.io.IOException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Optional;

/**
 * A call's SDES key material (RFC 4568): our master key for each call is minted by the sealed keystore through the
 * agent broker ({@link SipPhone.Keys}) and never chosen here, and every key a peer offers or answers is checked against
 * the keystore's memory of keys seen before, so a replayed SDES offer cannot make SRTP reuse keystream. Transient copies
 * of key bytes are wiped as soon as they are used. Thread-safe (the broker serializes its requests).
 */
final class MediaKeys {
    /** The suite we offer, and prefer in an offer. */
    static final SdesCrypto.Suite SUITE = SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80;

    private final SipPhone.Keys keys;

    MediaKeys(SipPhone.Keys keys) {
        this.keys = keys;
    }

    /** Our fresh key for {@code callId} from the sealed keystore, as the SDES attribute with {@code tag}. */
    SdesCrypto own(String callId, int tag) throws IOException {
        try (SrtpKeyMaterial m = keys.srtpKey(SUITE.name(), callId.replace(' ', '_'))) {
            return SdesCrypto.of(tag, SUITE, m.key(), m.salt());
        }
    }

    /**
     * Whether the keystore refuses the peer's key {@code theirs} for {@code callId}: empty when it is new, else the
     * broker's reason (a key seen before: a replayed offer or answer). Other failures to ask are thrown.
     */
    Optional<String> refused(SdesCrypto theirs, String callId) throws IOException {
        byte[] k = theirs.masterKey();
        byte[] s = theirs.masterSalt();
        try {
            keys.checkOffered(k, s, callId);
            return Optional.empty();
        } catch (BrokerRefusedException e) {
            return Optional.of(e.reason());
        } finally {
            Arrays.fill(k, (byte) 0);
            Arrays.fill(s, (byte) 0);
        }
    }

    /** Whether two SDES attributes carry the same master key and salt (constant time); the copies are wiped. */
    static boolean sameKey(SdesCrypto a, SdesCrypto b) {
        byte[] x = a.masterKey();
        byte[] y = b.masterKey();
        byte[] sx = a.masterSalt();
        byte[] sy = b.masterSalt();
        try {
            return MessageDigest.isEqual(x, y) & MessageDigest.isEqual(sx, sy);
        } finally {
            Arrays.fill(x, (byte) 0);
            Arrays.fill(y, (byte) 0);
            Arrays.fill(sx, (byte) 0);
            Arrays.fill(sy, (byte) 0);
        }
    }
}
