package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.cli.Main;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditReader;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.testing.FreePorts;
import java.io.File;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;
import picocli.CommandLine;

/**
 * The in-browser verifier of audit exports (docs/console.md, "Verify an export in the browser") in Debian's chromium:
 * opened from disk as {@code tpmphone audit verifier} writes it, with no server, and served by the console at
 * {@code /ui/verify} under its CSP. On an intact export and on tampered ones (a changed detail, a removed record, a
 * forged checkpoint, a bad signature, a cut tail, records rewritten up to a checkpoint) it must give the verdict,
 * the first broken record and the message that {@code tpmphone audit verify --export --json} gives on the same files.
 */
@Timeout(300)
class AuditVerifierBrowserIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path SHOTS = Path.of("target", "console-screenshots");
    private static final int RECORDS = 2500;
    private static final String ADMIN = "admin-token-for-the-verifier-browser-test";

    private static Path dir;
    private static Path keyPem;
    private static Path verifier;
    private static ChromeDriver browser;
    private static Path profile;

    @BeforeAll
    static void writeTheExports() throws Exception {
        dir = Files.createTempDirectory("audit-verifier-it");
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair keys = g.generateKeyPair();
        Path db = dir.resolve("audit.db");
        writeLog(db, keys, -1);
        keyPem = dir.resolve("audit-key.pem");
        Files.writeString(keyPem, AuditVerifier.publicKeyPem(keys.getPublic()));
        // Someone who rewrote the log (record 1500 changed, the chain rebuilt after it, every checkpoint re-signed)
        // with a key of their own, which the export carries.
        KeyPair theirs = g.generateKeyPair();
        Path rekeyedDb = dir.resolve("rekeyed.db");
        writeLog(rekeyedDb, theirs, 1499);
        Path theirPem = dir.resolve("their-key.pem");
        Files.writeString(theirPem, AuditVerifier.publicKeyPem(theirs.getPublic()));
        Run rekeyed = cli("audit", "export", "--db", rekeyedDb.toString(), "--json", "--public-key",
                theirPem.toString(), "--out", dir.resolve("rekeyed.json").toString());
        assertEquals(0, rekeyed.exit, "audit export of the re-keyed log: " + rekeyed);
        Path intact = dir.resolve("intact.json");
        Run export = cli("audit", "export", "--db", db.toString(), "--json", "--public-key", keyPem.toString(),
                "--out", intact.toString());
        assertEquals(0, export.exit, "audit export: " + export);
        ObjectNode doc = (ObjectNode) JSON.readTree(intact.toFile());
        assertTrue(doc.has("publicKey"), "the export carries the key: " + doc.fieldNames());
        write("changed-detail", doc, d -> record(d, 1500).put("detail", record(d, 1500).get("detail").asText()
                .replace("\"i\":", "\"i\":9")));
        write("removed-record", doc, d -> ((ArrayNode) d.get("records")).remove(1699));
        write("forged-checkpoint", doc, d -> checkpoint(d, 2000).put("timestamp", "2001-01-01T00:00:00.000Z"));
        write("bad-signature", doc, d -> {
            byte[] s = Base64.getDecoder().decode(checkpoint(d, 1000).get("signature").asText());
            s[s.length - 1] ^= 1;
            checkpoint(d, 1000).put("signature", Base64.getEncoder().encodeToString(s));
        });
        write("cut-tail", doc, d -> {
            ArrayNode records = (ArrayNode) d.get("records");
            while (records.size() > 2400) {
                records.remove(records.size() - 1);
            }
            d.put("recordCount", 2400);
        });
        // A hash replaced together with the next record's link: the chain still links, the hash does not recompute.
        write("rewritten-hash", doc, d -> {
            ObjectNode r = record(d, 1000);
            String forged = "00".repeat(32);
            r.put("hash", forged);
            record(d, 1001).put("prevHash", forged);
        });
        write("not-an-export", doc, d -> d.put("format", "something-else"));
        // '+' before a 4-digit year: Instant.parse refuses it (the sign only before more than 4 digits).
        write("plus-year", doc, d -> record(d, 700).put("timestamp", "+" + record(d, 700).get("timestamp")
                .asText()));
        // A year a JavaScript Date cannot hold (NaN): must not hash as 0 nor switch off the ordering checks.
        write("year-300000", doc, d -> record(d, 2500).put("timestamp", "+300000-01-01T00:00:00.000Z"));
        Files.writeString(dir.resolve("unsigned.json"), JSON.writeValueAsString(doc.deepCopy().without(
                "publicKey")));
        verifier = dir.resolve("verifier");
        Run written = cli("audit", "verifier", "--out", verifier.toString());
        assertEquals(0, written.exit, "audit verifier: " + written);
        assertTrue(Files.isRegularFile(verifier.resolve("verify.html"))
                && Files.isRegularFile(verifier.resolve("static/verify.js")), "written: " + written.out);

        Files.createDirectories(SHOTS);
        profile = Files.createTempDirectory("chromium-profile");
        browser = browser(profile);
    }

    /** RECORDS records from 16 threads; the one numbered {@code changed} (if any) says something else. */
    private static void writeLog(Path db, KeyPair keys, int changed) throws Exception {
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), AuditLog.Options.defaults())) {
            ExecutorService callers = Executors.newFixedThreadPool(16);
            try {
                List<Future<?>> appended = new ArrayList<>();
                for (int i = 0; i < RECORDS; i++) {
                    AuditEventType type = AuditEventType.values()[i % AuditEventType.values().length];
                    Map<String, Object> detail = new TreeMap<>();
                    detail.put("i", i == changed ? 9000 + i : i);
                    // Text a verifier must encode exactly as the writer did: non-ASCII, a surrogate pair, escapes.
                    detail.put("note", "café 中 \uD83D\uDE00 \"quoted\" \\ </script> #" + i);
                    AuditEntry entry = AuditEntry.of(type, "host-" + (i % 97), "OUTCOME_" + (i % 3), detail);
                    appended.add(callers.submit(() -> log.append(entry)));
                }
                for (Future<?> f : appended) {
                    f.get();
                }
            } finally {
                callers.shutdown();
            }
        }
    }

    @AfterAll
    static void stop() {
        if (browser != null) {
            browser.quit();
        }
        if (profile != null) {
            SwtpmProcess.deleteDirectory(profile);
        }
        if (dir != null) {
            SwtpmProcess.deleteDirectory(dir);
        }
    }

    private static ObjectNode record(ObjectNode doc, int seq) {
        ObjectNode r = (ObjectNode) doc.get("records").get(seq - 1);
        assertEquals(seq, r.get("seq").asInt(), "records are in seq order in the export");
        return r;
    }

    private static ObjectNode checkpoint(ObjectNode doc, int seq) {
        for (JsonNode c : doc.get("checkpoints")) {
            if (c.get("seq").asInt() == seq) {
                return (ObjectNode) c;
            }
        }
        throw new AssertionError("no checkpoint at " + seq + " in " + doc.get("checkpoints"));
    }

    private static void write(String name, ObjectNode doc, Consumer<ObjectNode> tamper) throws Exception {
        ObjectNode copy = doc.deepCopy();
        tamper.accept(copy);
        try (OutputStream out = Files.newOutputStream(dir.resolve(name + ".json"))) {
            JSON.writerWithDefaultPrettyPrinter().writeValue(out, copy);
        }
    }

    private record Run(int exit, String out, String err) {
        @Override
        public String toString() {
            return "exit " + exit + "\nout: " + out + "\nerr: " + err;
        }
    }

    private static Run cli(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = Main.withConventions(new CommandLine(new Main()), Map.of());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int exit = cli.execute(args);
        cli.getOut().flush();
        cli.getErr().flush();
        return new Run(exit, out.toString(), err.toString());
    }

    private static ChromeDriver browser(Path profile) {
        File chromium = new File("/usr/bin/chromium");
        File driver = new File("/usr/bin/chromedriver");
        assertTrue(chromium.canExecute() && driver.canExecute(), "this test needs Debian's chromium and"
                + " chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): apt-get install chromium"
                + " chromium-driver (./tpmphone test installs them)");
        ChromeOptions options = new ChromeOptions();
        options.setBinary(chromium);
        options.addArguments("--headless=new", "--no-sandbox", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--disable-dev-shm-usage", "--window-size=1300,1000", "--user-data-dir=" + profile,
                // The console's server has a self-signed certificate; this browser talks to nothing else.
                "--ignore-certificate-errors");
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driver)
                // not usingAnyFreePort(): Selenium picks outside the ephemeral range too, where our picks are, and
                // reserves nothing, so another test JVM could take its number before chromedriver binds it
                .usingPort(FreePorts.tcp()).build();
        ChromeDriver d = new ChromeDriver(service, options);
        d.manage().timeouts().pageLoadTimeout(Duration.ofSeconds(30));
        return d;
    }

    /** What the page shows after verifying {@code export} (and {@code key}, if given). */
    private record PageVerdict(String state, String intact, String verdict, String verdictText, String kind,
                               String seq, String message, String summary, String recordsChecked, String headHash,
                               String keySource, String error) {
    }

    private static PageVerdict verifyInThePage(String url, Path export, Path key) {
        browser.get(url);
        new WebDriverWait(browser, Duration.ofSeconds(30)).withMessage(() -> "the verifier page did not load its"
                + " script; the page is " + browser.getPageSource()).until(x -> "ready".equals(state()));
        assertTrue(browser.findElements(By.cssSelector("script:not([src]), [style], style")).isEmpty(),
                "no inline script or style: " + browser.getPageSource());
        browser.findElement(By.id("export-file")).sendKeys(export.toAbsolutePath().toString());
        if (key != null) {
            browser.findElement(By.id("key-file")).sendKeys(key.toAbsolutePath().toString());
        }
        browser.findElement(By.id("verify")).click();
        new WebDriverWait(browser, Duration.ofSeconds(120)).withMessage(() -> "no verdict for " + export
                + "; the page says " + browser.findElement(By.tagName("main")).getText())
                .until(x -> "done".equals(state()) || "error".equals(state()));
        WebElement result = browser.findElement(By.id("result"));
        return new PageVerdict(state(), result.getAttribute("data-intact"), result.getAttribute("data-verdict"),
                text("verdict"), result.getAttribute("data-kind"), result.getAttribute("data-seq"),
                text("problem-message"), text("summary"), text("records-checked"),
                text("head-hash"), text("key-source"), text("error"));
    }

    private static String state() {
        return String.valueOf(browser.executeScript("return document.body.dataset.state"));
    }

    private static String text(String id) {
        return String.valueOf(browser.executeScript("return document.getElementById(arguments[0]).textContent",
                id));
    }

    /** Asserts that the page and `tpmphone audit verify --export F --public-key K --json` agree; returns the CLI's. */
    private static JsonNode assertSameVerdict(String name, PageVerdict page, String... extraCliArgs) throws Exception {
        List<String> args = new ArrayList<>(List.of("audit", "verify", "--export",
                dir.resolve(name + ".json").toString(), "--json"));
        args.addAll(List.of(extraCliArgs));
        Run run = cli(args.toArray(String[]::new));
        if (run.exit == 1 && !run.out.startsWith("{")) {
            // Not an export at all: the CLI reports an error, the page its MALFORMED_EXPORT message.
            assertEquals("error", page.state(), name + ": the CLI refused the file (" + run + "), the page said "
                    + page);
            assertTrue(page.error().startsWith("MALFORMED_EXPORT: ") && run.err.contains(page.error().substring(
                    "MALFORMED_EXPORT: ".length())), name + ": same reason; CLI " + run.err + ", page " + page.error());
            return null;
        }
        JsonNode cli = JSON.readTree(run.out);
        assertEquals("done", page.state(), name + ": the page gave no verdict: " + page + "; the CLI: " + cli);
        assertEquals(cli.get("intact").asText(), page.intact(), name + ": CLI " + cli + ", page " + page);
        if (cli.has("firstProblem")) {
            JsonNode p = cli.get("firstProblem");
            assertEquals(p.get("kind").asText(), page.kind(), name + ": CLI " + p + ", page " + page);
            assertEquals(p.get("seq").asText(), page.seq(), name + ": CLI " + p + ", page " + page);
            assertEquals(p.get("message").asText(), page.message(), name + ": CLI " + p + ", page " + page);
        } else {
            assertEquals("", page.kind(), name + ": the CLI found it intact, the page " + page);
        }
        assertEquals(cli.get("recordsChecked").asText(), page.recordsChecked(), name + ": " + page);
        assertEquals(cli.path("headHash").asText(""), page.headHash(), name + ": " + page);
        return cli;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"intact", "changed-detail", "removed-record", "forged-checkpoint", "bad-signature",
            "cut-tail", "rewritten-hash", "not-an-export", "plus-year"})
    void opened_fromDisk_thePageGivesTheVerdictOfTheCli(String name) throws Exception {
        PageVerdict page = verifyInThePage(verifier.resolve("verify.html").toUri().toString(),
                dir.resolve(name + ".json"), null);
        JsonNode cli = assertSameVerdict(name, page, "--public-key", keyPem.toString());
        // And what each verdict must be, so that both being wrong the same way fails too.
        Map<String, String> expected = Map.of("intact", "", "changed-detail", "HASH_MISMATCH 1500",
                "removed-record", "SEQ_GAP 1700", "forged-checkpoint", "CHECKPOINT_SIGNATURE_INVALID 2000",
                "bad-signature", "CHECKPOINT_SIGNATURE_INVALID 1000", "cut-tail", "CHECKPOINT_BEYOND_END 2500",
                "rewritten-hash", "HASH_MISMATCH 1000", "not-an-export", "MALFORMED", "plus-year", "MALFORMED");
        if (cli == null) {
            assertEquals("MALFORMED", expected.get(name), name + ": " + page);
        } else {
            assertEquals(expected.get(name), page.kind().isEmpty() ? "" : page.kind() + " " + page.seq(),
                    name + ": " + page);
            assertEquals("(carried by the export)", page.keySource(), name + ": the key the export carries");
            // A key the export carries proves nothing about who signed it: never a green INTACT with it.
            String verdict = page.kind().isEmpty() ? "CARRIED_KEY" : "BROKEN";
            assertEquals(verdict, page.verdict(), name + ": " + page);
            if (page.kind().isEmpty()) {
                assertFalse(page.verdictText().contains("INTACT"), name + ": " + page);
                assertTrue(page.verdictText().startsWith("CONSISTENT WITH THE KEY IT CARRIES (key id ")
                        && page.summary().contains("NOT verified"), name + ": " + page);
            }
        }
        if (name.equals("changed-detail")) {
            Files.copy(browser.getScreenshotAs(OutputType.FILE).toPath(), SHOTS.resolve("verify.png"),
                    StandardCopyOption.REPLACE_EXISTING);
        }
    }

    @Test
    void reKeyedExport_isNotIntactWithTheKeyItCarries_andAKeyMismatchWithTheServerKey_asTheCliSays()
            throws Exception {
        String url = verifier.resolve("verify.html").toUri().toString();
        PageVerdict carried = verifyInThePage(url, dir.resolve("rekeyed.json"), null);
        assertEquals("done", carried.state(), "the page gave no verdict: " + carried);
        assertEquals("CARRIED_KEY", carried.verdict(), "a re-signed export with its own key: " + carried);
        assertFalse(carried.verdictText().contains("INTACT"), "the page said " + carried.verdictText());
        assertTrue(carried.summary().contains("NOT verified") && !carried.summary().contains("(signatures verified)"),
                "the summary says the key is not verified: " + carried.summary());
        Run cliWithoutKey = cli("audit", "verify", "--export", dir.resolve("rekeyed.json").toString(), "--json");
        assertNotEquals(0, cliWithoutKey.exit, "the CLI does not trust the carried key either: " + cliWithoutKey);

        PageVerdict withServerKey = verifyInThePage(url, dir.resolve("rekeyed.json"), keyPem);
        JsonNode cli = assertSameVerdict("rekeyed", withServerKey, "--public-key", keyPem.toString());
        assertEquals("CHECKPOINT_KEY_MISMATCH", withServerKey.kind(), "with the server's key: " + withServerKey
                + "; the CLI: " + cli);
        assertEquals("BROKEN", withServerKey.verdict(), "with the server's key: " + withServerKey);
    }

    @Test
    void aYearBeyondWhatADateHolds_isRefusedAsMalformed_notHashedAsZero() {
        PageVerdict page = verifyInThePage(verifier.resolve("verify.html").toUri().toString(),
                dir.resolve("year-300000.json"), keyPem);
        assertEquals("error", page.state(), "the page gave a verdict on a year-300000 timestamp: " + page);
        assertTrue(page.error().startsWith("MALFORMED_EXPORT: ") && page.error().contains("+300000-01-01"),
                "the page's error: " + page.error());
        // The CLI reads the year and finds the record's hash wrong: both refuse the file.
        Run cli = cli("audit", "verify", "--export", dir.resolve("year-300000.json").toString(), "--public-key",
                keyPem.toString(), "--json");
        assertNotEquals(0, cli.exit, "the CLI: " + cli);
    }

    @Test
    void withoutAnyKey_thePageSaysSignaturesWereNotChecked_asTheCliDoes() throws Exception {
        PageVerdict page = verifyInThePage(verifier.resolve("verify.html").toUri().toString(),
                dir.resolve("unsigned.json"), null);
        JsonNode cli = assertSameVerdict("unsigned", page, "--unsigned");
        assertFalse(cli.get("signaturesChecked").asBoolean(), cli.toString());
        assertTrue(page.summary().contains("signatures NOT checked"), page.toString());
        assertEquals("UNSIGNED", page.verdict(), page.toString());
    }

    @Test
    void servedByTheConsole_underItsCsp_withTheKeyGivenApart_theVerdictIsTheCliS_andNoCspViolation()
            throws Exception {
        Path state = Files.createTempDirectory("verifier-server");
        try (AttestationServer server = AttestationServer.builder().stateDirectory(state).adminToken(ADMIN)
                .start()) {
            String base = server.uri().toString();
            for (String name : List.of("intact", "forged-checkpoint", "removed-record")) {
                PageVerdict page = verifyInThePage(base + "/ui/verify", dir.resolve(name + ".json"), keyPem);
                assertSameVerdict(name, page, "--public-key", keyPem.toString());
                assertEquals("(from the key file)", page.keySource(), name + ": " + page);
                assertEquals(name.equals("intact") ? "INTACT" : "BROKEN", page.verdict(), name + ": " + page);
                assertEquals(name.equals("intact") ? "INTACT" : "BROKEN", page.verdictText(), name + ": " + page);
            }
            browser.get(base + "/ui/sign-in");
            browser.findElement(By.id("credential")).sendKeys(ADMIN);
            browser.findElement(By.id("sign-in")).click();
            new WebDriverWait(browser, Duration.ofSeconds(30)).until(x -> browser.getCurrentUrl().endsWith("/ui/fleet"));
            browser.get(base + "/ui/csp-reports");
            assertEquals("0", browser.findElement(By.id("csp-count")).getText(), "CSP violations: "
                    + browser.findElement(By.id("csp-recent")).getText());
        } finally {
            SwtpmProcess.deleteDirectory(state);
        }
    }
}
