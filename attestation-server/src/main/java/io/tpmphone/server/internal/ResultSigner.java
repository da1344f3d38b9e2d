package io.tpmphone.server.internal;

import io.tpmphone.attestation.AttestationResult;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Signs attestation results ({@link AttestationResult}) as compact JWS (RFC 7515) with ES256 (RFC 7518 §3.4: ECDSA
 * P-256 SHA-256, signature = r || s, 32 bytes each) and the server's result key. Header: {@code alg ES256, kid, typ
 * ear+jwt}. The key id is the hex of the first 16 bytes of SHA-256 over the key's SubjectPublicKeyInfo, as
 * {@code GET /v1/server} shows.
 *
 * <p>Signing runs on Bouncy Castle's {@code SHA256withPLAIN-ECDSA}, which returns r || s (each left-padded to 32
 * bytes) as JWS wants it, with one {@link Signature} per thread. Bouncy Castle rather than the JDK's SunEC because it
 * signs P-256 several times faster (it computes k·G with a precomputed fixed-point comb;
 * benchmarks/EcdsaBenchmark); its plain encoding rather than DER plus a conversion of our own, or nimbus-jose-jwt,
 * because it is as fast or faster (benchmarks/ResultSigningBenchmark, figures in docs/decisions/0007). Standard JWS
 * libraries verify the output (the tests check it with nimbus-jose-jwt). Thread-safe.
 */
public final class ResultSigner {
    private static final Provider BOUNCY_CASTLE = new org.bouncycastle.jce.provider.BouncyCastleProvider();
    private static final Base64.Encoder B64URL = Base64.getUrlEncoder().withoutPadding();
    /** ECDSA with SHA-256 whose signature is r || s, each as long as the curve order (32 bytes for P-256). */
    private static final String ALGORITHM = "SHA256withPLAIN-ECDSA";
    private static final int ES256_SIGNATURE_BYTES = 64;

    private final PrivateKey key;
    private final String keyId;
    private final byte[] encodedHeader;
    private final ThreadLocal<Signature> signers;

    public ResultSigner(KeyPair keys) throws GeneralSecurityException {
        this.key = keys.getPrivate();
        this.keyId = keyId((ECPublicKey) keys.getPublic());
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("alg", "ES256");
        header.put("kid", keyId);
        header.put("typ", "ear+jwt");
        this.encodedHeader = B64URL.encode(Json.write(header).getBytes(StandardCharsets.UTF_8));
        Signature.getInstance(ALGORITHM, BOUNCY_CASTLE).initSign(key); // fail now, not per request
        this.signers = ThreadLocal.withInitial(() -> {
            try {
                Signature s = Signature.getInstance(ALGORITHM, BOUNCY_CASTLE);
                s.initSign(key);
                return s;
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("cannot initialize ES256 signing", e);
            }
        });
    }

    public static String keyId(ECPublicKey key) {
        byte[] h = HttpApi.sha256(key.getEncoded());
        return java.util.HexFormat.of().formatHex(h, 0, 16);
    }

    public String keyId() {
        return keyId;
    }

    /** The compact JWS of {@code result}: its one encoding ({@link AttestationResult#encode()}) as the payload. */
    public String sign(AttestationResult result) throws GeneralSecurityException {
        byte[] payload = B64URL.encode(result.encode());
        byte[] signingInput = new byte[encodedHeader.length + 1 + payload.length];
        System.arraycopy(encodedHeader, 0, signingInput, 0, encodedHeader.length);
        signingInput[encodedHeader.length] = '.';
        System.arraycopy(payload, 0, signingInput, encodedHeader.length + 1, payload.length);
        Signature s = signers.get();
        byte[] rs;
        try {
            s.update(signingInput);
            rs = s.sign();
        } catch (GeneralSecurityException | RuntimeException e) {
            signers.remove(); // never reuse a Signature that may hold half an input
            throw e;
        }
        if (rs.length != ES256_SIGNATURE_BYTES) { // a key on another curve: refuse rather than emit a bad JWS
            throw new GeneralSecurityException("ES256 needs a " + ES256_SIGNATURE_BYTES + "-byte r || s, the result key"
                    + " gave " + rs.length + " bytes: it is not a P-256 key");
        }
        byte[] signature = B64URL.encode(rs);
        StringBuilder jws = new StringBuilder(signingInput.length + 1 + signature.length);
        jws.append(new String(signingInput, StandardCharsets.US_ASCII)).append('.')
                .append(new String(signature, StandardCharsets.US_ASCII));
        return jws.toString();
    }
}
