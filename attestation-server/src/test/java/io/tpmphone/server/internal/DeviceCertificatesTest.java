package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.tpmphone.swtpm.testing.ManualClock;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The device CA's refusals before the certify signature verifies (AK_ENROLLED, NONCE, CERTIFY) can be provoked by
 * anyone who knows an AK id, so they are counted per client, check and AK; for an enrolled AK each one used to be a
 * record of its own. {@code UnauthenticatedRefusalsTest} sends NONCE refusals over HTTPS; the CERTIFY check needs a
 * nonce the server issued, which only the AK's holder can ask for, so it is driven here with in-process nonces.
 */
@Timeout(60)
class DeviceCertificatesTest {
    private static final String REMOTE = "192.0.2.9";

    @TempDir
    Path dir;
    private final ManualClock clock = new ManualClock();
    private final List<String> recorded = Collections.synchronizedList(new ArrayList<>());
    private final List<Long> counts = Collections.synchronizedList(new ArrayList<>());
    private Registry registry;
    private NonceService nonces;
    private RefusalAggregator refusals;
    private DeviceCertificates certificates;
    private final String akId = "000b" + "ab".repeat(32);

    @BeforeEach
    void open() throws Exception {
        registry = Registry.open(dir.resolve("registry.db"), clock);
        registry.enroll(new Registry.Host("host1", HexFormat.of().parseHex("000b" + "e1".repeat(32)), new byte[] {1},
                new byte[] {2}, HexFormat.of().parseHex(akId), new byte[] {3}, clock.instant().toString()));
        nonces = new NonceService(clock);
        AuditTrail trail = (type, subject, outcome, detail) -> {
            recorded.add(subject + " " + outcome + " " + detail.get("check"));
            counts.add(((Number) detail.getOrDefault("count", 1)).longValue());
        };
        refusals = new RefusalAggregator(trail, clock, Duration.ofSeconds(60), 1024);
        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC");
        ec.initialize(new ECGenParameterSpec("secp256r1"));
        certificates = new DeviceCertificates(registry, nonces,
                ServerIdentity.loadOrCreate(dir.resolve("keys"), List.of()), new KeyApprover(ec.generateKeyPair()),
                trail, clock, host -> Optional.empty()).withRefusals(refusals);
    }

    @AfterEach
    void close() throws Exception {
        registry.close();
    }

    @Test
    void junkCertifyRequestsForAnEnrolledAk_withFreshNonces_areCountedPerClientCheckAndAk() throws Exception {
        int requests = 200;
        for (int i = 0; i < requests; i++) {
            // Half with a nonce the server issued for the AK (reaching CERTIFY), half with one it never issued.
            String nonce = i % 2 == 0 ? HexFormat.of().formatHex(nonces.issue(akId, Duration.ofSeconds(30)))
                    : String.format("%064x", i);
            String junk = java.util.Base64.getEncoder().encodeToString(new byte[] {(byte) i, 1, 2, 3});
            String body = "{\"akId\":\"" + akId + "\",\"nonce\":\"" + nonce + "\",\"tikPublic\":\"" + junk
                    + "\",\"certifyInfo\":\"" + junk + "\",\"signature\":\"" + junk + "\"}";
            ApiException e = assertThrows(ApiException.class, () -> certificates.issue(body, REMOTE),
                    "request " + i + " was not refused");
            assertEquals(i % 2 == 0 ? "CERTIFY" : "NONCE", e.check(), "request " + i + ": " + e.getMessage());
        }
        String subject = "ak:" + akId.substring(0, 20) + "…";
        assertEquals(List.of(subject + " DEVICE_CERTIFICATE_REFUSED CERTIFY",
                subject + " DEVICE_CERTIFICATE_REFUSED NONCE"), recorded,
                "one first record per check for the AK, not one per request");
        refusals.flushAll();
        assertEquals(4, recorded.size(), "and one summary each: " + recorded);
        assertEquals(requests, counts.stream().mapToLong(Long::longValue).sum(), "every refusal is counted");
    }

    @Test
    void withoutAClientAddress_everyRefusalIsItsOwnRecord() throws Exception {
        String body = "{\"akId\":\"" + akId + "\",\"nonce\":\"" + "5a".repeat(32) + "\",\"tikPublic\":\"AAAA\","
                + "\"certifyInfo\":\"AAAA\",\"signature\":\"AAAA\"}";
        for (int i = 0; i < 3; i++) {
            assertEquals("NONCE", assertThrows(ApiException.class, () -> certificates.issue(body)).check());
        }
        assertEquals(3, recorded.size(), "in-process callers (no address) are recorded one by one: " + recorded);
    }
}
