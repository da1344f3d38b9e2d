package io.tpmphone.keystore;

/**
 * SRTP crypto suites the keystore mints master keys for (RFC 4568 §6.2.1, RFC 3711): the master key and master salt
 * lengths in bytes.
 */
public enum SrtpSuite {
    AES_CM_128_HMAC_SHA1_80(16, 14),
    AES_CM_128_HMAC_SHA1_32(16, 14);

    private final int keyLength;
    private final int saltLength;

    SrtpSuite(int keyLength, int saltLength) {
        this.keyLength = keyLength;
        this.saltLength = saltLength;
    }

    public int keyLength() {
        return keyLength;
    }

    public int saltLength() {
        return saltLength;
    }
}
