package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.SwtpmExtension;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.TpmCertification;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmUri;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The published attacks on attestation verifiers (Keylime's CVEs, tpm2-tools' {@code tpm2_checkquote}), each replayed
 * against the real server over HTTPS with a real swtpm (EK certificate from the test CA), and each refused. One test
 * per attack, named after the CVE it reproduces; docs/threat-model.md lists them with the tests that already covered
 * parts of them.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(180)
class KnownVerifierAttacksIT {
    @RegisterExtension
    static final SwtpmExtension TPM = SwtpmExtension.builder().withEkCertificate(true).build();

    @TempDir
    static Path dir;
    private AttestationServer server;
    private AttestationClient client;
    private TpmClient tpm;
    private HostAttestation host;
    private MeasurementLogStore store;
    private String akId;
    private LaunchSpec approved;
    private int launches;

    @BeforeAll
    void enroll() throws Exception {
        Path jar = Fixture.softphoneJar(dir);
        approved = Fixture.spec(jar, Fixture.config(dir, "sip.port=5061\n"), List.of());
        server = Fixture.server(dir.resolve("server"), TPM.process(), Fixture.policy(1, approved), Clock.systemUTC());
        client = Fixture.client(server);
        tpm = TpmClient.open(TpmUri.parse(TPM.process().tpmUri()));
        host = new HostAttestation(tpm, client);
        akId = host.enroll("victim", Fixture.enrollmentToken(client, "victim")).akId();
        store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
    }

    @AfterAll
    void close() throws Exception {
        store.close();
        tpm.close();
        server.close();
    }

    // ---- Keylime ----------------------------------------------------------------------------------------------------

    /**
     * Keylime CVE-2023-38200: the registrar served TLS on one thread, so a client that opened a connection and never
     * finished its handshake stalled every agent's registration. Here 20 connections stay half-open (10 send nothing,
     * 10 the first bytes of a ClientHello) while a real appraisal — nonce, TPM quote, verification — finishes in
     * under 5 s.
     */
    @Test
    void twentyHalfOpenTlsHandshakes_doNotStallARealAppraisal_keylimeCve2023_38200() throws Exception {
        List<Socket> halfOpen = new ArrayList<>();
        try {
            for (int i = 0; i < 20; i++) {
                Socket s = new Socket();
                s.connect(new InetSocketAddress(server.uri().getHost(), server.port()), 5_000);
                if (i % 2 == 1) {
                    // A TLS record header announcing 512 bytes of handshake, and the start of a ClientHello.
                    OutputStream out = s.getOutputStream();
                    out.write(new byte[] {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (byte) 0xfc, 0x03, 0x03});
                    out.flush();
                }
                halfOpen.add(s);
            }
            reboot();
            long start = System.nanoTime();
            HostAttestation.Verdict v = host.attest(akId, store);
            long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertEquals(IntegrityLevel.IDENTIFIED, v.level(),
                    () -> "the appraisal during the stall: " + v.reasons());
            assertTrue(millis < 5_000, "the appraisal took " + millis + " ms with 20 half-open handshakes");
            int stillOpen = 0;
            for (Socket s : halfOpen) {
                s.setSoTimeout(50);
                try {
                    if (s.getInputStream().read() != -1) {
                        stillOpen++; // the server answered something: still, it did not stall
                    }
                } catch (SocketTimeoutException waiting) {
                    stillOpen++; // the server still waits for the rest of this handshake
                }
            }
            assertEquals(20, stillOpen, "the half-open connections were still held while the appraisal ran");
        } finally {
            for (Socket s : halfOpen) {
                s.close();
            }
        }
    }

    /**
     * Keylime CVE-2023-38201: the registrar's error message for a wrong activation answer contained the value it
     * expected, so a second attempt passed without the TPM. Here a wrong activation answer (the TPM's true answer with
     * one bit changed), a wrong enrollment token and a wrong admin credential are refused, and neither the refusals
     * nor the audit records nor the server's log (at TRACE) hold the expected value in any encoding.
     */
    @Test
    void refusals_neverEchoTheExpectedSecret_keylimeCve2023_38201() throws Exception {
        List<String> secrets = new ArrayList<>();
        List<String> seen = new ArrayList<>();
        ListAppender<ILoggingEvent> log = captureServerLog();
        try (SwtpmProcess other = SwtpmProcess.builder().withEkCertificate(true).start();
             TpmClient stranger = TpmClient.open(TpmUri.parse(other.tpmUri()))) {
            String token = Fixture.enrollmentToken(client, "guest");
            secrets.add(token);
            // A wrong enrollment token first: refused, the real one is still usable afterwards.
            AttestationClientException wrongToken = assertThrows(AttestationClientException.class,
                    () -> client.post("/v1/enrollments", enrollment(stranger, "guest", token.substring(1) + "x"),
                            null));
            assertEquals(403, wrongToken.status(), wrongToken.getMessage());
            seen.add(wrongToken.getMessage());

            JsonNode challenge = client.post("/v1/enrollments", enrollment(stranger, "guest", token), null);
            JsonNode credential = challenge.get("credential");
            Base64.Decoder b64 = Base64.getDecoder();
            SecretBytes secret = stranger.activateCredential(HostAttestation.AK, EkType.RSA_2048.defaultHandle(),
                    b64.decode(credential.get("integrityHmac").asText()),
                    b64.decode(credential.get("encIdentity").asText()),
                    b64.decode(credential.get("encryptedSecret").asText()));
            byte[] expected = secret.reveal();
            secret.destroy();
            secrets.add(HexFormat.of().formatHex(expected));
            secrets.add(Base64.getEncoder().encodeToString(expected));
            secrets.add(Base64.getUrlEncoder().withoutPadding().encodeToString(expected));
            byte[] wrong = expected.clone();
            wrong[wrong.length - 1] ^= 1;
            AttestationClientException wrongAnswer = assertThrows(AttestationClientException.class,
                    () -> client.post("/v1/enrollments/" + challenge.get("enrollmentId").asText() + "/activation",
                            Map.of("secret", Base64.getEncoder().encodeToString(wrong)), null));
            assertEquals(403, wrongAnswer.status(), wrongAnswer.getMessage());
            assertEquals(Optional.of("ACTIVATION"), wrongAnswer.check(), wrongAnswer.getMessage());
            seen.add(wrongAnswer.getMessage());

            secrets.add(Fixture.ADMIN_TOKEN);
            AttestationClientException wrongAdmin = assertThrows(AttestationClientException.class,
                    () -> client.get("/v1/hosts", Fixture.ADMIN_TOKEN.substring(1) + "x"));
            assertEquals(403, wrongAdmin.status(), wrongAdmin.getMessage());
            seen.add(wrongAdmin.getMessage());
        } finally {
            releaseServerLog(log);
        }
        for (JsonNode r : client.get("/v1/audit?from=1&limit=1000", Fixture.ADMIN_TOKEN).get("records")) {
            seen.add(r.toString());
        }
        for (ILoggingEvent e : log.list) {
            seen.add(e.getFormattedMessage() + (e.getThrowableProxy() == null ? "" : " " + e.getThrowableProxy()
                    .getMessage()));
        }
        assertTrue(seen.size() > 3 + 1, "refusals, audit records and log lines were read: " + seen.size());
        for (String s : seen) {
            for (String secret : secrets) {
                assertFalse(s.contains(secret), "a refusal, record or log line holds an expected secret ("
                        + secret.length() + " characters): " + s);
                // and no 16-character piece of it either (a truncated echo still helps a guess)
                for (int i = 0; i + 16 <= secret.length(); i += 8) {
                    String piece = secret.substring(i, i + 16);
                    assertFalse(s.contains(piece), "a refusal, record or log line holds part of an expected"
                            + " secret: " + s);
                }
            }
        }
    }

    /**
     * Keylime CVE-2023-3674: a quote whose signature did not verify was only logged, and the agent stayed trusted.
     * Here the host's genuine quote with one bit of its signature changed is refused (403 SIGNATURE, audited), yields
     * no result and no keystore approval, leaves the host's last appraisal as it was, and the host's next genuine
     * appraisal is judged on its own.
     */
    @Test
    void aQuoteWhoseSignatureDoesNotVerify_isRefusedAndAudited_notOnlyLogged_keylimeCve2023_3674() throws Exception {
        reboot();
        assertEquals(IntegrityLevel.IDENTIFIED, host.attest(akId, store).level(), "a genuine appraisal first");
        JsonNode before = client.get("/v1/hosts/victim", Fixture.ADMIN_TOKEN).get("lastAppraisal");

        HostAttestation.Grant grant = host.requestNonce(akId);
        TpmQuote quote = tpm.quote(HostAttestation.AK, grant.pcrSelection(), grant.nonce());
        byte[] signature = quote.signature();
        signature[signature.length - 1] ^= 0x01;
        Map<String, Object> forged = new LinkedHashMap<>(HostAttestation.appraisalRequest(akId, grant.nonce(),
                quote, store.log()));
        forged.put("signature", Base64.getEncoder().encodeToString(signature));
        forged.put("keyApprovalPcrs", "sha256:0-7,14");
        AttestationClientException e = assertThrows(AttestationClientException.class, () -> host.appraise(forged),
                "a quote whose signature does not verify must not be appraised");
        assertEquals(403, e.status(), e.getMessage());
        assertEquals(Optional.of("SIGNATURE"), e.check(), e.getMessage());
        JsonNode refusal = lastRecord("REFUSAL");
        assertEquals("APPRAISAL_REFUSED", refusal.get("outcome").asText(), refusal.toString());
        assertEquals("SIGNATURE", refusal.at("/detail/check").asText(), refusal.toString());
        assertEquals(before, client.get("/v1/hosts/victim", Fixture.ADMIN_TOKEN).get("lastAppraisal"),
                "the refused quote changed nothing about the host");
        assertEquals(IntegrityLevel.IDENTIFIED, host.attest(akId, store).level(), "the host's next genuine appraisal");
    }

    /**
     * Keylime CVE-2025-13609: the registrar let an agent id be registered again with another TPM, taking over the
     * identity. Here another genuine TPM (its EK certificate from the same trusted CA, with an operator's token for
     * the name) cannot enroll as "victim" (409 HOST_EK); nor can it claim the victim's public EK with an AK of its
     * own, because only the victim's TPM can activate that credential (403 ACTIVATION). The victim keeps its AK and is
     * appraised as before.
     */
    @Test
    void reEnrollingTheHostWithAnotherTpm_isRefused_andTheHostKeepsItsTpm_keylimeCve2025_13609() throws Exception {
        try (SwtpmProcess other = SwtpmProcess.builder().withEkCertificate(true).start();
             TpmClient stranger = TpmClient.open(TpmUri.parse(other.tpmUri()))) {
            String token = Fixture.enrollmentToken(client, "victim");
            AttestationClientException takeover = assertThrows(AttestationClientException.class,
                    () -> new HostAttestation(stranger, client).enroll("victim", token));
            assertEquals(409, takeover.status(), takeover.getMessage());
            assertEquals(Optional.of("HOST_EK"), takeover.check(), takeover.getMessage());

            TpmtPublic victimEk = tpm.ensureEndorsementKey(EkType.RSA_2048);
            byte[] victimEkCertificate = tpm.readEndorsementCertificate(EkType.RSA_2048).orElseThrow();
            Map<String, Object> claim = enrollment(stranger, "victim", null);
            claim.put("ekPublic", Base64.getEncoder().encodeToString(victimEk.encoded()));
            claim.put("ekCertificate", Base64.getEncoder().encodeToString(victimEkCertificate));
            JsonNode challenge = client.post("/v1/enrollments", claim, null);
            JsonNode credential = challenge.get("credential");
            Base64.Decoder b64 = Base64.getDecoder();
            assertThrows(TpmException.class, () -> stranger.activateCredential(HostAttestation.AK,
                    EkType.RSA_2048.defaultHandle(), b64.decode(credential.get("integrityHmac").asText()),
                    b64.decode(credential.get("encIdentity").asText()),
                    b64.decode(credential.get("encryptedSecret").asText())),
                    "another TPM cannot open a credential made for the victim's EK");
            AttestationClientException guess = assertThrows(AttestationClientException.class,
                    () -> client.post("/v1/enrollments/" + challenge.get("enrollmentId").asText() + "/activation",
                            Map.of("secret", Base64.getEncoder().encodeToString(stranger.getRandom(32))), null));
            assertEquals(403, guess.status(), guess.getMessage());
            assertEquals(Optional.of("ACTIVATION"), guess.check(), guess.getMessage());
        }
        JsonNode victim = client.get("/v1/hosts/victim", Fixture.ADMIN_TOKEN);
        assertEquals(akId, victim.get("akId").asText(), "the victim keeps its AK: " + victim);
        reboot();
        assertEquals(IntegrityLevel.IDENTIFIED, host.attest(akId, store).level(), "the victim is appraised as before");
    }

    // ---- tpm2-tools --------------------------------------------------------------------------------------------------

    /**
     * tpm2-tools CVE-2024-29038: {@code tpm2_checkquote} checked the signature but not the magic, so anything the AK
     * signed (or a TPM attestation of another kind) passed for a quote. Here the AK validly signs the host's own quote
     * with its magic changed ({@code TPM2_Hash} then {@code TPM2_Sign}: the TPM signs such data because it does not
     * start with {@code TPM_GENERATED_VALUE}) — refused at MAGIC; and a genuine TPM2_Certify by the AK over the
     * nonce — refused at TYPE.
     */
    @Test
    void aValidlySignedAttestationWithTheWrongMagicOrType_isRefused_tpm2ToolsCve2024_29038() throws Exception {
        reboot();
        HostAttestation.Grant grant = host.requestNonce(akId);
        TpmQuote quote = tpm.quote(HostAttestation.AK, grant.pcrSelection(), grant.nonce());
        byte[] notGenerated = quote.attest();
        notGenerated[0] = 0x00; // 0x00544347 instead of TPM_GENERATED_VALUE 0xff544347
        byte[] signature = tpm.signWithRestrictedKey(HostAttestation.AK, notGenerated);
        Map<String, Object> wrongMagic = new LinkedHashMap<>(HostAttestation.appraisalRequest(akId, grant.nonce(),
                quote, store.log()));
        wrongMagic.put("attest", Base64.getEncoder().encodeToString(notGenerated));
        wrongMagic.put("signature", Base64.getEncoder().encodeToString(signature));
        assertRefused403(wrongMagic, "MAGIC");

        HostAttestation.Grant second = host.requestNonce(akId);
        TpmQuote fresh = tpm.quote(HostAttestation.AK, second.pcrSelection(), second.nonce());
        TpmCertification certify = tpm.certify(HostAttestation.AK, HostAttestation.AK, second.nonce());
        assertEquals(io.tpmphone.attestation.AttestType.CERTIFY, TpmsAttest.parse(certify.attest()).type());
        Map<String, Object> wrongType = new LinkedHashMap<>(HostAttestation.appraisalRequest(akId, second.nonce(),
                fresh, store.log()));
        wrongType.put("attest", Base64.getEncoder().encodeToString(certify.attest()));
        wrongType.put("signature", Base64.getEncoder().encodeToString(certify.signature()));
        assertRefused403(wrongType, "TYPE");
    }

    /**
     * tpm2-tools CVE-2024-29039: {@code tpm2_checkquote} took the PCR selection from the PCR file, not from the quote,
     * so values for other PCRs than the quoted ones passed. Here a quote over PCRs 0-7, 14 and 16 is offered with the
     * values of 0-7 and 14 only (still every PCR the policy needs), and a quote over 0-7 and 14 with an extra value for
     * PCR 16: both refused at PCR_SELECTION.
     */
    @Test
    void aQuotedPcrSelectionOtherThanTheClaimedOne_isRefused_tpm2ToolsCve2024_29039() throws Exception {
        reboot();
        PcrSelection required = PcrSelection.parse("sha256:0-7,14");
        PcrSelection wider = PcrSelection.parse("sha256:0-7,14,16");

        HostAttestation.Grant grant = host.requestNonce(akId);
        TpmQuote overWider = tpm.quote(HostAttestation.AK, wider, grant.nonce());
        assertRefused403(claiming(akId, grant.nonce(), overWider, required, overWider.pcrValues()), "PCR_SELECTION");

        HostAttestation.Grant second = host.requestNonce(akId);
        TpmQuote overRequired = tpm.quote(HostAttestation.AK, required, second.nonce());
        TpmQuote widerValues = tpm.quote(HostAttestation.AK, wider, tpm.getRandom(32));
        assertRefused403(claiming(akId, second.nonce(), overRequired, wider, widerValues.pcrValues()),
                "PCR_SELECTION");
    }

    // ---- the event log -----------------------------------------------------------------------------------------------

    /**
     * An event whose type is not covered by what is extended lets a log say that a measurement was something else
     * (the TCG PC Client log's event type is not in its digest). Here the type is part of every extended digest:
     * a jar's event retyped as configuration, and a measured event retyped as BASELINE (the one type that is never
     * extended), keeping their digests and data, both make the appraisal FAILED at the event log; the genuine log of
     * the same launch is MEASURED.
     */
    @Test
    void anEventRetypedWithoutChangingItsDigest_isFailed() throws Exception {
        reboot();
        Broker broker = Broker.start(dir.resolve("broker-" + (++launches)), binder -> "unused");
        MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(approved, broker);
        try {
            MeasurementLog genuine = store.log();
            List<MeasurementEvent> events = genuine.events();
            int jar = indexOf(events, EventType.CLASSPATH_JAR);
            int jvm = indexOf(events, EventType.JVM);
            for (Map.Entry<Integer, EventType> retype : Map.of(jar, EventType.CONFIGURATION,
                    jvm, EventType.BASELINE).entrySet()) {
                List<MeasurementEvent> altered = new ArrayList<>(events);
                MeasurementEvent e = events.get(retype.getKey());
                altered.set(retype.getKey(), MeasurementEvent.of(e.sequence(), e.pcrIndex(), retype.getValue(),
                        e.contentDigest(), e.data()));
                HostAttestation.Verdict v = host.attest(akId, MeasurementLog.of(altered));
                assertEquals(IntegrityLevel.FAILED, v.level(), () -> e.type() + " retyped as " + retype.getValue() + ": "
                        + v.reasons());
                assertEquals("event-log", v.failedCheck(), () -> "reasons: " + v.reasons());
            }
            HostAttestation.Verdict v = host.attest(akId, genuine);
            assertEquals(IntegrityLevel.MEASURED, v.level(), () -> "the same launch's genuine log: " + v.reasons());
        } finally {
            child.process().getOutputStream().close();
            child.terminated().get(10, TimeUnit.SECONDS);
            broker.close();
        }
    }

    // ---- helpers -----------------------------------------------------------------------------------------------------

    private void reboot() throws Exception {
        tpm.disconnect();
        TPM.process().restart();
        store.reconcile();
        assertEquals(MeasurementLogStore.State.NEW_BOOT, store.state());
    }

    private static int indexOf(List<MeasurementEvent> events, EventType type) {
        for (int i = 0; i < events.size(); i++) {
            if (events.get(i).type() == type) {
                return i;
            }
        }
        throw new AssertionError("the measured launch has no " + type + " event: " + events);
    }

    /** An appraisal request for {@code quote} that claims {@code selection} with {@code values}' values for it. */
    private Map<String, Object> claiming(String ak, byte[] nonce, TpmQuote quote, PcrSelection selection,
                                         PcrValues values) throws Exception {
        Map<String, Object> request = new LinkedHashMap<>(HostAttestation.appraisalRequest(ak, nonce, quote,
                store.log()));
        List<String> claimed = new ArrayList<>();
        for (int pcr : selection.indices()) {
            claimed.add(HexFormat.of().formatHex(values.value(pcr)));
        }
        request.put("pcrSelection", selection.toString());
        request.put("pcrValues", claimed);
        return request;
    }

    private void assertRefused403(Map<String, Object> request, String check) throws Exception {
        AttestationClientException e = assertThrows(AttestationClientException.class, () -> host.appraise(request),
                () -> "should be refused at " + check);
        assertEquals(403, e.status(), e.getMessage());
        assertEquals(Optional.of(check), e.check(), e.getMessage());
        JsonNode refusal = lastRecord("REFUSAL");
        assertEquals(check, refusal.at("/detail/check").asText(), "the refusal is audited: " + refusal);
    }

    private JsonNode lastRecord(String type) throws Exception {
        JsonNode records = client.get("/v1/audit?from=1&limit=1000", Fixture.ADMIN_TOKEN).get("records");
        for (int i = records.size() - 1; i >= 0; i--) {
            if (records.get(i).path("type").asText().equals(type)) {
                return records.get(i);
            }
        }
        throw new AssertionError("no " + type + " record among " + records.size());
    }

    /** The body of POST /v1/enrollments for {@code tpm}'s EK and an AK it creates if it has none. */
    private static Map<String, Object> enrollment(TpmClient tpm, String hostName, String token) throws Exception {
        TpmtPublic ek = tpm.ensureEndorsementKey(EkType.RSA_2048);
        byte[] certificate = tpm.readEndorsementCertificate(EkType.RSA_2048).orElseThrow();
        TpmtPublic ak = tpm.readPublic(HostAttestation.AK).isPresent() ? tpm.readPublic(HostAttestation.AK).get()
                : tpm.createAttestationKey(EkType.RSA_2048.defaultHandle(), HostAttestation.AK);
        Base64.Encoder b64 = Base64.getEncoder();
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("host", hostName);
        request.put("ekPublic", b64.encodeToString(ek.encoded()));
        request.put("ekCertificate", b64.encodeToString(certificate));
        request.put("akPublic", b64.encodeToString(ak.encoded()));
        if (token != null) {
            request.put("enrollmentToken", token);
        }
        return request;
    }

    /**
     * Every log line of ours at TRACE (what {@code TPMPHONE_LOG=trace} gives an operator; the shipped logback.xml keeps
     * third-party loggers at WARN, and Jetty's DEBUG would log request headers, the admin credential among them) goes
     * to a list, and not to the console, until {@link #releaseServerLog}.
     */
    private ListAppender<ILoggingEvent> captureServerLog() {
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        Logger ours = (Logger) LoggerFactory.getLogger("io.tpmphone");
        ListAppender<ILoggingEvent> captured = new ListAppender<>();
        captured.start();
        List<Appender<ILoggingEvent>> console = new ArrayList<>();
        root.iteratorForAppenders().forEachRemaining(console::add);
        console.forEach(root::detachAppender);
        detachedConsole = console;
        levelBefore = ours.getLevel();
        root.addAppender(captured);
        ours.setLevel(Level.TRACE);
        return captured;
    }

    private List<Appender<ILoggingEvent>> detachedConsole = List.of();
    private Level levelBefore;

    private void releaseServerLog(ListAppender<ILoggingEvent> captured) {
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        root.detachAppender(captured);
        ((Logger) LoggerFactory.getLogger("io.tpmphone")).setLevel(levelBefore);
        detachedConsole.forEach(root::addAppender);
    }
}
