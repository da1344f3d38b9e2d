package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
    void derToJose_padsShortComponents_stripsSignBytes_andRefusesGarbage() throws Exception {
        byte[] r = new byte[33];
        r[1] = (byte) 0x80; // 33 bytes with a leading 0: a positive DER INTEGER
        byte[] s = new byte[31];
        s[0] = 0x01;
        byte[] der = new byte[2 + 2 + r.length + 2 + s.length];
        der[0] = 0x30;
        der[1] = (byte) (der.length - 2);
        der[2] = 0x02;
        der[3] = (byte) r.length;
        System.arraycopy(r, 0, der, 4, r.length);
        der[4 + r.length] = 0x02;
        der[5 + r.length] = (byte) s.length;
        System.arraycopy(s, 0, der, 6 + r.length, s.length);
        byte[] jose = ResultSigner.derToJose(der);
        assertEquals(64, jose.length);
        assertEquals((byte) 0x80, jose[0]);
        assertEquals(0, jose[32]);
        assertEquals(1, jose[33]);
        assertArrayEquals(new byte[0], java.util.Arrays.copyOfRange(jose, 64, 64));
        assertThrows(GeneralSecurityException.class, () -> ResultSigner.derToJose(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}));
    }
}
