package io.tpmphone.server.internal;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import java.security.KeyPair;
import java.security.interfaces.ECPrivateKey;
import java.security.interfaces.ECPublicKey;
import java.util.Map;

/**
 * Signs attestation results as compact JWS (ES256) with the server's result key. The key id is the SHA-256 of the
 * public key's SubjectPublicKeyInfo (hex, first 16 bytes), which relying parties match against
 * {@code GET /v1/server}. Thread-safe.
 */
public final class ResultSigner {
    private final ECDSASigner signer;
    private final String keyId;

    public ResultSigner(KeyPair keys) throws JOSEException {
        this.signer = new ECDSASigner((ECPrivateKey) keys.getPrivate());
        this.keyId = keyId((ECPublicKey) keys.getPublic());
    }

    public static String keyId(ECPublicKey key) {
        byte[] h = HttpApi.sha256(key.getEncoded());
        return java.util.HexFormat.of().formatHex(h, 0, 16);
    }

    public String keyId() {
        return keyId;
    }

    public String sign(Map<String, Object> claims) throws JOSEException {
        JWTClaimsSet.Builder b = new JWTClaimsSet.Builder();
        claims.forEach(b::claim);
        SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.ES256).keyID(keyId)
                .type(new JOSEObjectType("ear+jwt")).build(), b.build());
        jwt.sign(signer);
        return jwt.serialize();
    }
}
