package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.nimbusds.jose.crypto.ECDSAVerifier;
import com.nimbusds.jwt.SignedJWT;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import java.nio.file.Path;
import java.security.interfaces.ECPublicKey;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The public in-process verifier without a TPM: what it refuses comes back as the HTTP API would say it (status,
 * error code, check), it audits what it decides, and it signs with the key its state directory holds. Enrollment and
 * appraisal of real evidence run in the appraisal benchmark against swtpm hosts.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class InProcessVerifierTest {
    private static final String POLICY = "{\"version\":1,\"measurementPcr\":14,\"pcrBank\":\"sha256\","
            + "\"bootPcrs\":[0],\"releases\":[{\"name\":\"softphone-test\",\"jvm\":{\"/usr/bin/java\":\""
            + "11".repeat(32) + "\"},\"jars\":{\"softphone.jar\":\"" + "22".repeat(32) + "\"},\"configuration\":"
            + "{\"softphone.properties\":\"" + "33".repeat(32) + "\"},\"commandLine\":[\"/usr/bin/java\",\"-cp\","
            + "\"softphone.jar\",\"Main\"]}],\"requireIsolation\":false,\"nonceTtlSeconds\":30,"
            + "\"resultTtlSeconds\":300}";

    @TempDir
    Path dir;

    @Test
    void aMalformedRequest_isRefusedAsTheApiRefusesIt() throws Exception {
        try (InProcessVerifier v = InProcessVerifier.open(dir, List.of(), POLICY)) {
            InProcessVerifier.RefusedException e = assertThrows(InProcessVerifier.RefusedException.class,
                    () -> v.appraise("{\"akId\":\"00\"}"));
            assertEquals(400, e.status());
            assertEquals("bad_request", e.error());
            assertTrue(e.getMessage().contains("missing field"), e.getMessage());
        }
    }

    @Test
    void anEnrollmentWithGarbageKeys_isRefusedWithTheCheck_andAudited_beforeTheTpmIsAsked() throws Exception {
        try (InProcessVerifier v = InProcessVerifier.open(dir, List.of(), POLICY)) {
            InProcessVerifier.RefusedException e = assertThrows(InProcessVerifier.RefusedException.class,
                    () -> v.enroll("host-a", new byte[] {1, 2, 3}, new byte[0], new byte[] {4, 5, 6}, challenge -> {
                        throw new AssertionError("the TPM must not be asked for a refused enrollment");
                    }));
            assertEquals(400, e.status(), e.getMessage());
            assertEquals(Optional.of("EK_PUBLIC"), e.check());
            assertTrue(e.getMessage().contains("ekPublic is not a TPMT_PUBLIC"), e.getMessage());
            assertEquals("enrollment_refused", e.error());
        }
        VerificationReport report = AuditVerifier.verify(dir.resolve("audit.db"), Optional.empty());
        assertTrue(report.intact(), report.toString());
        assertTrue(report.recordsChecked() >= 2, "the token issued and the refusal: " + report);
    }

    private static io.tpmphone.attestation.AttestationResult result(String host) {
        java.time.Instant now = java.time.Instant.now();
        return io.tpmphone.attestation.AttestationResult.builder().host(host).issuedAt(now)
                .expiresAt(now.plusSeconds(60)).nonceHex("00".repeat(32))
                .level(io.tpmphone.attestation.IntegrityLevel.FAILED)
                .claims(io.tpmphone.attestation.ClaimVector.empty()).akId("000b" + "11".repeat(32))
                .pcrDigestHex("22".repeat(32)).policyVersion(1).build();
    }

    @Test
    void signedResults_verifyWithTheServersResultKey_andSurviveAReopen() throws Exception {
        String first;
        try (InProcessVerifier v = InProcessVerifier.open(dir, List.of(), POLICY)) {
            first = v.sign(result("host-a"));
            assertEquals(1, v.policy().version());
            assertEquals(32, v.issueNonce("00".repeat(34)).length);
        }
        try (InProcessVerifier v = InProcessVerifier.open(dir, List.of(), POLICY)) {
            String second = v.sign(result("host-b"));
            ECPublicKey key = (ECPublicKey) AuditVerifier.publicKeyFromPem(java.nio.file.Files.readString(
                    dir.resolve("keys").resolve("result-signing-cert.pem")));
            ECDSAVerifier verifier = new ECDSAVerifier(key);
            assertTrue(SignedJWT.parse(first).verify(verifier), "signed before the reopen");
            assertTrue(SignedJWT.parse(second).verify(verifier), "signed after it, with the same key");
            assertEquals("host-a", SignedJWT.parse(first).getJWTClaimsSet().getSubject());
            assertFalse(first.equals(second));
        }
    }
}
