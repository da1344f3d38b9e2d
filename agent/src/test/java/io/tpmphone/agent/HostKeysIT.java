package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.SrtpKeys;
import io.tpmphone.keystore.SrtpSuite;
import io.tpmphone.keystore.Unlock;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Signature;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The sealed keystore on a real host: the server approves the measured state, keys are released only then, the TLS
 * identity key gets its device certificate, and refusals reach the server's audit log.
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
class HostKeysIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static JsonNode audit(AttestationClient client) throws Exception {
        return client.get("/v1/audit?from=1&limit=1000", Fixture.ADMIN_TOKEN).get("records");
    }

    /** Polls the audit log (key events are reported asynchronously) until a record matches or 10 s pass. */
    private static JsonNode awaitAudit(AttestationClient client, Predicate<JsonNode> match) {
        JsonNode records = Await.until("a matching audit record", Duration.ofSeconds(10), () -> audit(client),
                rs -> first(rs, match) != null);
        return first(records, match);
    }

    private static JsonNode first(JsonNode records, Predicate<JsonNode> match) {
        for (JsonNode r : records) {
            if (match.test(r)) {
                return r;
            }
        }
        return null;
    }

    /** The policy with its one release replaced by another build's (the running one is revoked). */
    private static long count(JsonNode records, String type) {
        long n = 0;
        for (JsonNode r : records) {
            if (r.path("type").asText().equals(type)) {
                n++;
            }
        }
        return n;
    }

    /** The records of one type, for assertion messages. */
    private static List<JsonNode> ofType(JsonNode records, String type) {
        List<JsonNode> found = new java.util.ArrayList<>();
        for (JsonNode r : records) {
            if (r.path("type").asText().equals(type)) {
                found.add(r);
            }
        }
        return found;
    }

    private static String revokingTheRelease(String policy, int version, Path dir) throws Exception {
        Path other = Files.createDirectories(dir.resolve("other")).resolve("softphone-core.jar");
        Files.writeString(other, "another build");
        ObjectNode p = (ObjectNode) JSON.readTree(policy);
        p.put("version", version);
        ArrayNode releases = JSON.createArrayNode();
        releases.add((ObjectNode) JSON.valueToTree(ReleaseManifest.of("softphone-other",
                Fixture.spec(other, Fixture.config(Files.createDirectories(dir.resolve("other-config")), "b=2\n"),
                        List.of()))));
        p.set("releases", releases);
        return JSON.writeValueAsString(p);
    }

    private static String alsoApproving(String policy, int version, LaunchSpec spec) throws Exception {
        ObjectNode p = (ObjectNode) JSON.readTree(policy);
        p.put("version", version);
        ObjectNode release = JSON.valueToTree(ReleaseManifest.of("softphone-next", spec));
        ((ArrayNode) p.get("releases")).add(release);
        return JSON.writeValueAsString(p);
    }

    @Test
    void approvedState_releasesKeys_andTheTikGetsADeviceCertificate_thenRevocationStopsBoth(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        String policy = Fixture.policy(1, spec);
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, policy, Clock.systemUTC());
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-k", Fixture.PCR, spec,
                     Duration.ofHours(1), Clock.systemUTC())
                     .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-k"))) {
            AttestationClient client = Fixture.client(server);
            Agent.Status status = agent.start();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), status.level(), () -> "reasons: " + status.reasons());
            assertTrue(status.keysApproved(), () -> "the server approved the measured state for the keystore: "
                    + status);

            SrtpKeys first = agent.keys().srtpKey("call-1@host-k", SrtpSuite.AES_CM_128_HMAC_SHA1_80);
            SrtpKeys second = agent.keys().srtpKey("call-2@host-k", SrtpSuite.AES_CM_128_HMAC_SHA1_80);
            assertFalse(first.masterKey().equalsConstantTime(second.masterKey()),
                    "call-2 gets a master key of its own, not call-1's again");
            // The TPM clock passes the approval's limit: the release is refused in the TPM (APPROVAL_EXPIRED), the
            // agent attests once more for a fresh approval and releases the key.
            long appraisalsBefore = count(audit(client), "APPRAISAL");
            io.tpmphone.attestation.ClockInfo ci = tpm.readClock();
            tpm.clockSet(SecretBytes.copyOf(new byte[0]), ci.clock() + 3_600_000L);
            agent.keys().srtpKey("call-after-expiry@host-k", SrtpSuite.AES_CM_128_HMAC_SHA1_80).destroy();
            JsonNode afterExpiry = audit(client);
            assertEquals(appraisalsBefore + 1, count(afterExpiry, "APPRAISAL"), () -> "one fresh attestation; the "
                    + "APPRAISAL records: " + ofType(afterExpiry, "APPRAISAL"));

            KeystoreException replay = assertThrows(KeystoreException.class,
                    () -> agent.keys().checkOffered(first.masterKey(), first.masterSalt(), "call-3"));
            assertEquals(KeystoreException.Reason.SEEN_BEFORE, replay.reason(), replay.getMessage());

            // The device certificate: issued by the server's device CA for exactly the TPM's TIK.
            X509Certificate ca = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(
                    new ByteArrayInputStream(client.get("/v1/server", null).get("deviceCaCertificate").asText()
                            .getBytes(StandardCharsets.US_ASCII)));
            X509Certificate cert = agent.keys().certificate().orElseThrow();
            cert.verify(ca.getPublicKey());
            cert.checkValidity();
            TpmtPublic tik = agent.keys().keystore().identityKey();
            assertArrayEquals(tik.subjectPublicKeyInfo(), cert.getPublicKey().getEncoded(),
                    () -> "the device certificate is for the TIK; it certifies " + cert.getPublicKey());
            assertTrue(cert.getSubjectX500Principal().getName().contains("CN=host-k"),
                    () -> "the subject names host-k: " + cert);
            byte[] digest = HashAlgorithm.SHA256.digest("CertificateVerify content".getBytes(StandardCharsets.UTF_8));
            Signature ecdsa = Signature.getInstance("NONEwithECDSA");
            ecdsa.initVerify(cert.getPublicKey());
            ecdsa.update(digest);
            byte[] tikSignature = agent.keys().sign(digest);
            assertTrue(ecdsa.verify(tikSignature), () -> "the TIK signs inside the TPM for the certificate; DER "
                    + java.util.HexFormat.of().formatHex(tikSignature));
            awaitAudit(client, r -> r.path("outcome").asText().equals("DEVICE_CERTIFICATE_ISSUED")
                    && r.path("subject").asText().equals("host-k"));

            // The approval the host holds now: PolicyPCR of this state, valid until the quote's TPM clock + TTL.
            PolicyApproval held = new HostAttestation(tpm, client).attest(status.akId(), agent.store().log(),
                    Optional.of(agent.keys().pcrs()), null).keyApproval().orElseThrow();
            long clockBefore = held.limit().orElseThrow().clockBefore();

            // Revocation: the operator withdraws the release. The next attestation brings no approval ...
            client.put("/v1/policy", revokingTheRelease(policy, 2, dir), Fixture.ADMIN_TOKEN);
            Agent.Status revoked = agent.attestNow();
            assertFalse(revoked.keysApproved(), () -> "no approval for a revoked release: " + revoked);
            KeystoreException refused = assertThrows(KeystoreException.class,
                    () -> agent.keys().srtpKey("call-4@host-k", SrtpSuite.AES_CM_128_HMAC_SHA1_80));
            assertEquals(KeystoreException.Reason.NOT_APPROVED, refused.reason(), refused.getMessage());
            assertTrue(refused.getMessage().contains("keystore approvals need MEASURED"), refused.getMessage());
            KeystoreException signRefused = assertThrows(KeystoreException.class, () -> agent.keys().sign(digest));
            assertEquals(KeystoreException.Reason.NOT_APPROVED, signRefused.reason(), signRefused.getMessage());
            // ... and one the host kept stops working in the TPM once its clock passes the approval's limit.
            agent.keys().keystore().srtpKey("call-5@host-k", SrtpSuite.AES_CM_128_HMAC_SHA1_80,
                    Unlock.approved(held)).destroy();
            tpm.clockSet(SecretBytes.copyOf(new byte[0]), clockBefore);
            KeystoreException expired = assertThrows(KeystoreException.class, () -> agent.keys().keystore()
                    .srtpKey("call-6@host-k", SrtpSuite.AES_CM_128_HMAC_SHA1_80, Unlock.approved(held)));
            assertEquals(KeystoreException.Reason.APPROVAL_EXPIRED, expired.reason(), expired.getMessage());

            JsonNode record = awaitAudit(client, r -> r.path("type").asText().equals("KEY_RELEASE")
                    && r.path("outcome").asText().equals("REFUSED")
                    && r.at("/detail/callId").asText().equals("call-4@host-k"));
            assertEquals("host-k", record.get("subject").asText(), record::toString);
            assertEquals("NOT_APPROVED", record.at("/detail/reason").asText(), record::toString);
            awaitAudit(client, r -> r.path("type").asText().equals("KEY_RELEASE")
                    && r.path("outcome").asText().equals("RELEASED")
                    && r.at("/detail/callId").asText().equals("call-1@host-k"));
        }
    }

    @Test
    void tamperedJar_isRefusedWithAnAuditRecord_anApprovedNewReleaseWorksWithoutResealing_andAnExitedChildIsRefused(
            SwtpmProcess swtpm, @TempDir Path dir) throws Exception {
        Path jar = Fixture.softphoneJar(dir);
        Path config = Fixture.config(dir, "a=1\n");
        String policy = Fixture.policy(1, Fixture.spec(jar, config, List.of()));
        Path tampered = Files.createDirectories(dir.resolve("tampered")).resolve(jar.getFileName());
        // A working build that is not the approved one: the same classes plus one extra entry.
        try (java.util.zip.ZipInputStream in = new java.util.zip.ZipInputStream(Files.newInputStream(jar));
             java.util.zip.ZipOutputStream out = new java.util.zip.ZipOutputStream(Files.newOutputStream(tampered))) {
            for (java.util.zip.ZipEntry e; (e = in.getNextEntry()) != null; ) {
                out.putNextEntry(new java.util.zip.ZipEntry(e.getName()));
                in.transferTo(out);
                out.closeEntry();
            }
            out.putNextEntry(new java.util.zip.ZipEntry("implant.properties"));
            out.write("exfiltrate=keys\n".getBytes(StandardCharsets.US_ASCII));
            out.closeEntry();
        }
        LaunchSpec tamperedSpec = Fixture.spec(tampered, config, List.of());
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, policy, Clock.systemUTC());
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-t", Fixture.PCR,
                     tamperedSpec, Duration.ofHours(1), Clock.systemUTC())
                     .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-t"))) {
            AttestationClient client = Fixture.client(server);
            Agent.Status started = agent.start();
            assertEquals(Optional.of(IntegrityLevel.FAILED), started.level(),
                    () -> "the tampered jar fails the appraisal: " + started);
            KeystoreException e = assertThrows(KeystoreException.class,
                    () -> agent.keys().srtpKey("call-t1", SrtpSuite.AES_CM_128_HMAC_SHA1_80));
            assertEquals(KeystoreException.Reason.NOT_APPROVED, e.reason(), e.getMessage());
            assertTrue(e.getMessage().contains("level is FAILED (failed check executables)")
                    && e.getMessage().contains("jar softphone-core.jar: digest"),
                    "names the policy failure: " + e.getMessage());
            JsonNode record = awaitAudit(client, r -> r.path("type").asText().equals("KEY_RELEASE")
                    && r.at("/detail/callId").asText().equals("call-t1"));
            assertEquals("REFUSED", record.get("outcome").asText(), record::toString);
            assertEquals("host-t", record.get("subject").asText(), record::toString);
            assertTrue(record.at("/detail/message").asText().contains("FAILED"), record.toString());
            Optional<X509Certificate> failedCert = agent.keys().certificate();
            assertFalse(failedCert.isPresent(), () -> "no device certificate for a FAILED host; it has "
                    + failedCert.map(c -> c.getSubjectX500Principal() + " serial " + c.getSerialNumber().toString(16)));
            AttestationClientException noCert = assertThrows(AttestationClientException.class,
                    () -> new HostAttestation(tpm, client).requestDeviceCertificate(agent.status().akId(),
                            agent.keys().keystore()));
            assertEquals(Optional.of("LEVEL"), noCert.check(), noCert.getMessage());

            // The operator approves this build as a new release: keys flow, and nothing was re-sealed.
            byte[] sealedBefore = Files.readAllBytes(dir.resolve("agent/keystore/root.sealed"));
            client.put("/v1/policy", alsoApproving(policy, 2, tamperedSpec), Fixture.ADMIN_TOKEN);
            Agent.Status approved = agent.attestNow();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), approved.level(),
                    () -> "reasons: " + approved.reasons());
            agent.keys().srtpKey("call-t2", SrtpSuite.AES_CM_128_HMAC_SHA1_80).destroy();
            byte[] sealedAfter = Files.readAllBytes(dir.resolve("agent/keystore/root.sealed"));
            assertArrayEquals(sealedBefore, sealedAfter, () -> "nothing was re-sealed; root.sealed was "
                    + sealedBefore.length + " bytes, is " + sealedAfter.length + " bytes");

            // The softphone exits: TERMINATED caps the PCR, and its approval no longer fits.
            Process child = agent.child().orElseThrow();
            child.getOutputStream().close();
            Await.event("the softphone to exit after its stdin closed", Duration.ofSeconds(10), child.onExit(),
                    () -> "still running: " + child);
            Await.until("TERMINATED to be the last event of the measurement log", Duration.ofSeconds(10),
                    () -> agent.store().log().events().get(agent.store().log().size() - 1).type(),
                    type -> type == io.tpmphone.attestation.EventType.TERMINATED);
            KeystoreException afterExit = assertThrows(KeystoreException.class,
                    () -> agent.keys().srtpKey("call-t3", SrtpSuite.AES_CM_128_HMAC_SHA1_80));
            assertEquals(KeystoreException.Reason.NOT_APPROVED, afterExit.reason(), afterExit.getMessage());
        }
    }

    @Test
    void keysThroughTheBroker_toTheChildsClient_neverAppearInLogsOrErrors(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        ch.qos.logback.classic.Logger root = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(
                org.slf4j.Logger.ROOT_LOGGER_NAME);
        ch.qos.logback.classic.Level before = root.getLevel();
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> captured =
                new ch.qos.logback.core.read.ListAppender<>();
        captured.start();
        List<ch.qos.logback.core.Appender<ch.qos.logback.classic.spi.ILoggingEvent>> console =
                new java.util.ArrayList<>();
        List<byte[]> secrets = new java.util.ArrayList<>();
        List<String> texts = new java.util.ArrayList<>();
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC());
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-l", Fixture.PCR, spec,
                     Duration.ofHours(1), Clock.systemUTC())
                     .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-l"))) {
            Agent.Status started = agent.start();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), started.level(),
                    () -> "the agent starts MEASURED: " + started);
            // Everything at TRACE goes to our list only: the console (and CI's output) stays at WARN.
            root.iteratorForAppenders().forEachRemaining(console::add);
            console.forEach(root::detachAppender);
            root.addAppender(captured);
            root.setLevel(ch.qos.logback.classic.Level.TRACE);
            // The same calls the agent's broker makes for its child, over a broker of our own.
            Broker.Service service = new Broker.Service() {
                @Override
                public String quote(byte[] binder) {
                    return "akId=00";
                }

                @Override
                public SrtpKeys srtpKey(String callId, SrtpSuite suite) throws KeystoreException {
                    return agent.keys().srtpKey(callId, suite);
                }

                @Override
                public void checkOffered(byte[] fingerprint, String callId) throws KeystoreException {
                    agent.keys().checkOffered(fingerprint, callId);
                }
            };
            try (Broker broker = Broker.start(dir.resolve("own-broker"), service);
                 io.tpmphone.softphone.AgentBroker child = io.tpmphone.softphone.AgentBroker.connect(
                         broker.socketPath(), broker.token())) {
                for (int i = 0; i < 5; i++) {
                    try (var m = child.srtpKey("AES_CM_128_HMAC_SHA1_80", "call-" + i)) {
                        secrets.add(m.key().clone());
                        secrets.add(m.salt().clone());
                        texts.add(m.toString());
                        texts.add(assertThrows(io.tpmphone.softphone.BrokerRefusedException.class,
                                () -> child.checkOffered(m.key(), m.salt(), "replay")).getMessage());
                    }
                }
                agent.attestNow(); // reports the events to the server
                tpm.pcrExtend(Fixture.PCR, HashAlgorithm.SHA256.digest(new byte[] {9}));
                texts.add(assertThrows(io.tpmphone.softphone.BrokerRefusedException.class,
                        () -> child.srtpKey("AES_CM_128_HMAC_SHA1_80", "after-extend")).getMessage());
            }
            for (JsonNode r : audit(Fixture.client(server))) {
                texts.add(r.toString());
            }
        } finally {
            root.setLevel(before);
            root.detachAppender(captured);
            console.forEach(root::addAppender);
        }
        for (ch.qos.logback.classic.spi.ILoggingEvent e : captured.list) {
            texts.add(e.getFormattedMessage());
            for (ch.qos.logback.classic.spi.IThrowableProxy t = e.getThrowableProxy(); t != null; t = t.getCause()) {
                texts.add(t.getClassName() + ": " + t.getMessage());
            }
        }
        assertTrue(captured.list.size() > 5, () -> "the cycle was logged: " + captured.list.size() + " events");
        assertEquals(10, secrets.size(), "a key and a salt from each of the 5 calls");
        String all = String.join("\n", texts).toLowerCase(java.util.Locale.ROOT);
        for (byte[] secret : secrets) {
            for (String form : List.of(java.util.HexFormat.of().formatHex(secret),
                    java.util.Base64.getEncoder().encodeToString(secret),
                    java.util.Base64.getEncoder().withoutPadding().encodeToString(secret),
                    java.util.HexFormat.of().formatHex(java.util.Arrays.copyOf(secret, 8)))) {
                assertFalse(all.contains(form.toLowerCase(java.util.Locale.ROOT)),
                        () -> "key material appeared in logs, errors or the audit log: secret "
                                + (secrets.indexOf(secret) + 1) + " of " + secrets.size() + " (" + secret.length
                                + " bytes) as a " + form.length() + "-character encoding, in " + texts.size()
                                + " texts searched");
            }
        }
    }

    /**
     * A key-event report the server refuses as malformed (here a call decision naming a level that does not exist,
     * which the keystore passes on as it got it) must not stop attestation: the server's 400 carries the check
     * KEY_EVENTS, the agent drops the report and is appraised without it in the same round, and its next report says
     * that one event was dropped. Nothing of the dropped event reaches the audit log.
     */
    @Test
    void aReportTheServerRefusesAsMalformed_isDropped_andTheHostIsAppraisedAtOnce(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC());
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-m", Fixture.PCR, spec,
                     Duration.ofHours(1), Clock.systemUTC())
                     .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-m"))) {
            AttestationClient client = Fixture.client(server);
            Agent.Status started = agent.start();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), started.level(),
                    () -> "the agent starts MEASURED: " + started);
            assertEquals(Optional.empty(), agent.keys().pendingReport(), "no event is pending before the test's");
            long appraisalsBefore = count(audit(client), "APPRAISAL");

            agent.keys().recordCallDecision("IN", "ACCEPT", "sip:mallory@example.org", "SUPREME", "MEASURED",
                    "call-malformed", "a level no server knows");
            Agent.Status after = agent.attestNow();

            assertEquals(Optional.of(IntegrityLevel.MEASURED), after.level(),
                    () -> "the round went on without the report: " + after);
            JsonNode records = Await.until("the appraisal without the report in the audit log",
                    Duration.ofSeconds(10), () -> audit(client), rs -> count(rs, "APPRAISAL") > appraisalsBefore);
            assertEquals(appraisalsBefore + 1, count(records, "APPRAISAL"),
                    () -> "one more appraisal, the one without the report: " + ofType(records, "APPRAISAL"));
            assertEquals(null, first(records, r -> r.toString().contains("call-malformed")),
                    () -> "the dropped event was not recorded: " + ofType(records, "CALL_DECISION"));
            assertTrue(agent.keys().pendingReport().isPresent(), "the drop itself waits to be reported");

            agent.attestNow();
            JsonNode dropped = awaitAudit(client, r -> r.path("type").asText().equals("KEY_RELEASE")
                    && r.at("/detail/reason").asText().equals("EVENTS_DROPPED"));
            assertTrue(dropped.at("/detail/message").asText().startsWith("1 earlier key events were dropped"),
                    () -> "the next report says one event was dropped: " + dropped);
            assertEquals(null, first(audit(client), r -> r.toString().contains("call-malformed")),
                    "the dropped event was not recorded later either");
            assertEquals(Optional.empty(), agent.keys().pendingReport(), "nothing is left to report");

            // A well-formed decision's structured fields reach the server's record as fields, not only as text.
            String digest = "0a".repeat(32);
            agent.keys().recordCallDecision("OUT", "ACCEPT", "sip:bob@example.org", "MEASURED", "MEASURED",
                    "call-fields", "end-to-end DTLS: far end level MEASURED meets MEASURED", new Broker.DecisionFields(
                            "end-to-end DTLS", Optional.of(digest), Optional.of(42L)));
            agent.attestNow();
            JsonNode decision = awaitAudit(client, r -> r.path("type").asText().equals("CALL_DECISION")
                    && r.at("/detail/callId").asText().equals("call-fields"));
            assertEquals("end-to-end DTLS", decision.at("/detail/established").asText(), decision::toString);
            assertEquals(digest, decision.at("/detail/evidenceSha256").asText(), decision::toString);
            assertEquals(42, decision.at("/detail/resultAgeSeconds").asLong(-1), decision::toString);
        }
    }
}
