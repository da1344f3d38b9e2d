package io.tpmphone.server.audit;

import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.util.Objects;

/**
 * Signs audit checkpoints. Implementations must be thread-safe; the log calls {@link #sign} from its writer thread.
 * A signer backed by an HSM or TPM key can implement this directly.
 */
public interface AuditSigner {
    /** Identifies the key in stored checkpoints; {@link #keyIdOf(PublicKey)} for the built-in signer. */
    String keyId();

    /**
     * Signs {@code data} (the checkpoint encoding of {@code docs/audit.md}).
     *
     * @throws GeneralSecurityException if the key cannot sign
     */
    byte[] sign(byte[] data) throws GeneralSecurityException;

    /** The key that verifies {@link #sign} output. */
    PublicKey publicKey();

    /**
     * A SHA256withECDSA signer (DER signatures) over an EC key pair, P-256 recommended. The private key stays inside
     * the returned object and is never logged.
     *
     * @throws IllegalArgumentException if the pair is not an EC key pair
     */
    static AuditSigner ecdsa(KeyPair keyPair) {
        Objects.requireNonNull(keyPair, "keyPair");
        PrivateKey privateKey = Objects.requireNonNull(keyPair.getPrivate(), "keyPair.getPrivate()");
        PublicKey publicKey = Objects.requireNonNull(keyPair.getPublic(), "keyPair.getPublic()");
        if (!(publicKey instanceof ECPublicKey) || !"EC".equals(privateKey.getAlgorithm())) {
            throw new IllegalArgumentException("AuditSigner.ecdsa needs an EC key pair, got "
                    + publicKey.getAlgorithm() + "/" + privateKey.getAlgorithm());
        }
        String keyId = keyIdOf(publicKey);
        return new AuditSigner() {
            @Override
            public String keyId() {
                return keyId;
            }

            @Override
            public byte[] sign(byte[] data) throws GeneralSecurityException {
                Signature signature = Signature.getInstance(AuditVerifier.SIGNATURE_ALGORITHM);
                signature.initSign(privateKey);
                signature.update(data);
                return signature.sign();
            }

            @Override
            public PublicKey publicKey() {
                return publicKey;
            }

            @Override
            public String toString() {
                return "AuditSigner{SHA256withECDSA, keyId=" + keyId + "}";
            }
        };
    }

    /** First 16 bytes of SHA-256 over the key's X.509 SubjectPublicKeyInfo encoding, as lowercase hex. */
    static String keyIdOf(PublicKey publicKey) {
        byte[] digest = AuditEncoding.sha256().digest(publicKey.getEncoded());
        return AuditEncoding.hex(java.util.Arrays.copyOf(digest, 16));
    }
}
