package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.nimbusds.jose.crypto.ECDSAVerifier;
import com.nimbusds.jwt.SignedJWT;
import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.ClaimVector;
import io.tpmphone.attestation.IntegrityLevel;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.interfaces.ECPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Our ES256 JWS against an independent implementation (nimbus-jose-jwt). */
@Timeout(60)
class ResultSignerTest {

    @Test
    void everySignedResult_verifiesWithAStandardJwsLibrary_andATamperedOneDoesNot() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair keys = g.generateKeyPair();
        ResultSigner signer = new ResultSigner(keys);
        ECDSAVerifier verifier = new ECDSAVerifier((ECPublicKey) keys.getPublic());
        for (int i = 0; i < 300; i++) { // r or s shorter than 32 bytes happens about once in 64 signatures
            SignedJWT jwt = SignedJWT.parse(signer.sign(result("host-" + i)));
            assertTrue(jwt.verify(verifier), "signature " + i);
            assertEquals("ES256", jwt.getHeader().getAlgorithm().getName());
            assertEquals(signer.keyId(), jwt.getHeader().getKeyID());
            assertEquals("host-" + i, jwt.getJWTClaimsSet().getSubject());
        }
        String jws = signer.sign(result("host-a"));
        String forged = jws.substring(0, jws.indexOf('.') + 1)
                + java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(
                        "{\"level\":\"MEASURED\"}".getBytes(java.nio.charset.StandardCharsets.UTF_8))
                + jws.substring(jws.lastIndexOf('.'));
        assertFalse(SignedJWT.parse(forged).verify(verifier), "a changed payload must not verify");
    }

    /** A FAILED result: any claim vector allows that level. */
    private static AttestationResult result(String host) {
        Instant now = Instant.now();
        return AttestationResult.builder().host(host).issuedAt(now).expiresAt(now.plusSeconds(60))
                .nonceHex("00".repeat(32)).level(IntegrityLevel.FAILED).claims(ClaimVector.empty())
                .akId("000b" + "11".repeat(32)).pcrDigestHex("22".repeat(32)).policyVersion(1).build();
    }

    @Test
    void theSignature_isThe64ByteRAndSOfEs256_evenWhenRorSIsShort() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair keys = g.generateKeyPair();
        ResultSigner signer = new ResultSigner(keys);
        java.security.Signature verify = java.security.Signature.getInstance("SHA256withECDSAinP1363Format");
        for (int i = 0; i < 300; i++) { // a leading zero byte in r or s happens about once in 128 signatures
            String jws = signer.sign(result("host-" + i));
            byte[] rs = java.util.Base64.getUrlDecoder().decode(jws.substring(jws.lastIndexOf('.') + 1));
            assertEquals(64, rs.length, jws);
            verify.initVerify(keys.getPublic());
            verify.update(jws.substring(0, jws.lastIndexOf('.')).getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            assertTrue(verify.verify(rs), "SunEC verifies r || s (IEEE P1363) " + i);
        }
    }

    @Test
    void aKeyOnAnotherCurve_isRefusedAtTheFirstSignature() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp384r1"));
        ResultSigner signer = new ResultSigner(g.generateKeyPair());
        GeneralSecurityException e = assertThrows(GeneralSecurityException.class,
                () -> signer.sign(result("host")));
        assertTrue(e.getMessage().contains("not a P-256 key"), e.getMessage());
    }
}
