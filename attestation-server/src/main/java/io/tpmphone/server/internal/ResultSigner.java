package io.tpmphone.server.internal;

import io.tpmphone.attestation.AttestationResult;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Signs attestation results ({@link AttestationResult}) as compact JWS (RFC 7515) with ES256 (RFC 7518 §3.4: ECDSA
 * P-256 SHA-256, signature = r || s, 32 bytes each) and the server's result key. Header: {@code alg ES256, kid, typ
 * ear+jwt}. The key id is the hex of the first 16 bytes of SHA-256 over the key's SubjectPublicKeyInfo, as
 * {@code GET /v1/server} shows.
 *
 * <p>Signing runs on Bouncy Castle with one {@link Signature} per thread: ~7x faster than the JDK's SunEC for P-256
 * on this project's machine (benchmarks/EcdsaBenchmark); its ECDSA multiplies k·G with a fixed-point comb. Standard
 * JWS libraries verify the output (the end-to-end tests check it with nimbus-jose-jwt). Thread-safe.
 */
public final class ResultSigner {
    private static final Provider BOUNCY_CASTLE = new org.bouncycastle.jce.provider.BouncyCastleProvider();
    private static final Base64.Encoder B64URL = Base64.getUrlEncoder().withoutPadding();

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
        Signature.getInstance("SHA256withECDSA", BOUNCY_CASTLE).initSign(key); // fail now, not per request
        this.signers = ThreadLocal.withInitial(() -> {
            try {
                Signature s = Signature.getInstance("SHA256withECDSA", BOUNCY_CASTLE);
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
        byte[] der;
        try {
            s.update(signingInput);
            der = s.sign();
        } catch (GeneralSecurityException | RuntimeException e) {
            signers.remove(); // never reuse a Signature that may hold half an input
            throw e;
        }
        byte[] signature = B64URL.encode(derToJose(der));
        StringBuilder jws = new StringBuilder(signingInput.length + 1 + signature.length);
        jws.append(new String(signingInput, StandardCharsets.US_ASCII)).append('.')
                .append(new String(signature, StandardCharsets.US_ASCII));
        return jws.toString();
    }

    /** DER SEQUENCE { INTEGER r, INTEGER s } to the 64-byte r || s of JWS ES256. */
    static byte[] derToJose(byte[] der) throws GeneralSecurityException {
        if (der.length < 8 || der[0] != 0x30 || (der[1] & 0x80) != 0 || der[1] != der.length - 2) {
            throw new GeneralSecurityException("not a DER ECDSA signature");
        }
        int offset = 2;
        byte[] out = new byte[64];
        for (int part = 0; part < 2; part++) {
            if (der[offset] != 0x02) {
                throw new GeneralSecurityException("not a DER ECDSA signature");
            }
            int len = der[offset + 1];
            if (len <= 0 || offset + 2 + len > der.length) {
                throw new GeneralSecurityException("not a DER ECDSA signature");
            }
            byte[] v = Arrays.copyOfRange(der, offset + 2, offset + 2 + len);
            int start = 0;
            while (v.length - start > 32 && v[start] == 0) {
                start++;
            }
            if (v.length - start > 32) {
                throw new GeneralSecurityException("ECDSA component longer than 32 bytes");
            }
            System.arraycopy(v, start, out, part * 32 + 32 - (v.length - start), v.length - start);
            offset += 2 + len;
        }
        if (offset != der.length) {
            throw new GeneralSecurityException("trailing bytes after a DER ECDSA signature");
        }
        return out;
    }
}
