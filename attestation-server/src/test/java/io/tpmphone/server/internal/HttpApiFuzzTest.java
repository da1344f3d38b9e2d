package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditException;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditSigner;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Clock;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.eclipse.jetty.server.LocalConnector;
import org.eclipse.jetty.server.Server;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Coverage-guided fuzzing of the HTTP API's request decoding: the server's routes ({@link V1Routes}: enrollment,
 * activation, nonces, appraisals, device certificates, policy, tokens, hosts, audit) wired as
 * {@code AttestationServer} wires them, with real SQLite state, behind Jetty's in-memory connector. An input is a
 * request line ({@code METHOD /path?query}), a newline, and the body; every request carries the admin credential, so
 * the admin routes decode their bodies too. Contract: a JSON answer with a status below 500 (503 only while no
 * policy is loaded, which this harness avoids) — a 500 is an exception the decoders let through. Regression inputs under
 * {@code HttpApiFuzzTestInputs/}; fuzz with {@code ./tpmphone fuzz api}.
 */
@Timeout(10)
class HttpApiFuzzTest {
    private static final String ADMIN_TOKEN = "fuzz-admin-token";
    private static final Pattern REQUEST_LINE = Pattern.compile("(GET|POST|PUT|DELETE) (/[\\x21-\\x7e]{0,300})");
    private static final Pattern STATUS = Pattern.compile("^HTTP/1\\.1 (\\d{3}) ");

    @TempDir
    static Path state;
    private static AuditLog auditLog;
    private static Registry registry;
    private static RefusalAggregator refusals;
    private static Server jetty;
    private static LocalConnector connector;

    @BeforeAll
    static void server() throws Exception {
        Clock clock = Clock.systemUTC();
        ServerIdentity identity = ServerIdentity.loadOrCreate(state.resolve("keys"), List.of());
        auditLog = AuditLog.open(state.resolve("audit.db"), AuditSigner.ecdsa(identity.resultKeyPair()),
                AuditLog.Options.defaults());
        AuditTrail audit = (type, subject, outcome, detail) -> {
            try {
                auditLog.append(AuditEntry.of(AuditEventType.valueOf(type), subject, outcome, detail));
            } catch (AuditException e) {
                throw new ApiException(503, "audit_unavailable", e.getMessage());
            }
        };
        registry = Registry.open(state.resolve("registry.db"), clock);
        Registrar registrar = new Registrar(registry, new EkCertificates(List.of(), clock), audit, clock);
        refusals = new RefusalAggregator(audit, clock, RefusalAggregator.DEFAULT_WINDOW, 1024);
        registrar.withRefusals(refusals);
        HttpApi api = new HttpApi(MessageDigest.getInstance("SHA-256").digest(
                ADMIN_TOKEN.getBytes(StandardCharsets.UTF_8)), refusals);
        String policy;
        try (InputStream in = HttpApiFuzzTest.class.getResourceAsStream("HttpApiFuzzTestInputs/request/put-policy")) {
            String seed = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            policy = seed.substring(seed.indexOf('\n') + 1);
        }
        V1Routes.install(api, new V1Routes.Services(registry, registrar, new NonceService(clock), auditLog, identity,
                audit, refusals, clock, policy));
        jetty = new Server();
        connector = new LocalConnector(jetty);
        jetty.addConnector(connector);
        jetty.setHandler(api);
        jetty.start();
    }

    @AfterAll
    static void stop() throws Exception {
        jetty.stop();
        refusals.flushAll();
        registry.close();
        auditLog.close();
    }

    /** The harness reaches the routes: the server describes itself, and a bad appraisal is refused naming the field. */
    @Test
    void theRoutesAnswer() throws Exception {
        assertTrue(send("GET /v1/server", new byte[0]).startsWith("HTTP/1.1 200 "));
        String refused = send("POST /v1/appraisals", "{\"akId\":1}".getBytes(StandardCharsets.UTF_8));
        assertTrue(refused.startsWith("HTTP/1.1 400 ") && refused.contains("missing field"), refused);
    }

    @FuzzTest
    void request(byte[] data) throws Exception {
        int newline = indexOf(data, (byte) '\n');
        String first = newline < 0 ? "" : new String(data, 0, newline, StandardCharsets.ISO_8859_1);
        Matcher m = REQUEST_LINE.matcher(first);
        String requestLine = m.matches() ? first : "POST /v1/appraisals";
        byte[] body = newline < 0 ? data : Arrays.copyOfRange(data, newline + 1, data.length);
        String response = send(requestLine, body);
        Matcher status = STATUS.matcher(response);
        assertTrue(status.find(), () -> "no HTTP response to " + requestLine + ": " + abbreviate(response));
        int code = Integer.parseInt(status.group(1));
        assertTrue(code < 500, () -> requestLine + " answered " + code + ": " + abbreviate(response));
        assertTrue(code < 400 || !response.contains(ADMIN_TOKEN)
                || new String(data, StandardCharsets.ISO_8859_1).contains(ADMIN_TOKEN),
                "a refusal never repeats the credential (unless the request itself carried it where it is echoed)");
        if (response.contains("\r\nContent-Type: application/json")) {
            String json = response.substring(response.indexOf("\r\n\r\n") + 4);
            JsonNode answer = Json.MAPPER.readTree(json);
            assertNotNull(answer, () -> "an empty answer to " + requestLine);
            assertTrue(code == 200 || answer.hasNonNull("error"), () -> "a refusal names its error: " + json);
        }
    }

    private static String send(String requestLine, byte[] body) throws Exception {
        byte[] head = (requestLine + " HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer " + ADMIN_TOKEN
                + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length
                + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1);
        ByteBuffer request = ByteBuffer.allocate(head.length + body.length).put(head).put(body).flip();
        ByteBuffer answer = connector.getResponse(request, 5, TimeUnit.SECONDS);
        assertNotNull(answer, () -> "no answer within 5 s to " + requestLine);
        return StandardCharsets.UTF_8.decode(answer).toString();
    }

    private static int indexOf(byte[] data, byte b) {
        for (int i = 0; i < data.length; i++) {
            if (data[i] == b) {
                return i;
            }
        }
        return -1;
    }

    private static String abbreviate(String s) {
        return s.length() > 600 ? s.substring(0, 600) + "…" : s;
    }
}
