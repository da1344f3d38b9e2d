package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.Fixture;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MeasuredCommandLine;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmUri;
import java.io.File;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.openqa.selenium.By;
import org.openqa.selenium.Cookie;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The security team's console in a real browser (Debian's chromium through its chromium-driver, named explicitly;
 * nothing is downloaded): a server with two real swtpm hosts enrolled and appraised over HTTPS, one of them
 * relaunched with a tampered jar, and a call one side refused; the test signs in, walks every view, finds the tampered
 * host and the jar that changed, opens the refused call and sees both sides, reads the policy diff and the audit chain,
 * is refused a forged cross-site POST, signs out, and finds its cookie refused after sign-out and after the idle
 * timeout. No page has a script element or inline style, and the server's CSP report endpoint counted no violation.
 * Screenshots go to target/console-screenshots (docs/console.md shows them).
 */
@Timeout(300)
class ConsoleBrowserIT {
    private static final String AUDITOR = "auditor-credential-for-the-browser-test";
    private static final int PCR = 14;
    private static final String JAVA = "/opt/jdk-17/bin/java";
    private static final String RELEASE = "softphone-1.4.2";
    private static final List<String> ARGV = MeasuredCommandLine.forLaunch(JAVA, List.of(), List.of("softphone.jar"),
            "io.tpmphone.softphone.SoftphoneMain", "softphone.properties", List.of()).argv();
    private static final Duration IDLE = Duration.ofSeconds(12);
    /** How far the server's clock is ahead of the system's: the idle-timeout step moves it, instead of waiting. */
    private static final java.util.concurrent.atomic.AtomicReference<Duration> CLOCK_AHEAD =
            new java.util.concurrent.atomic.AtomicReference<>(Duration.ZERO);
    private static final java.time.Clock CLOCK = new java.time.Clock() {
        @Override
        public java.time.ZoneId getZone() {
            return java.time.ZoneOffset.UTC;
        }

        @Override
        public java.time.Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return Instant.now().plus(CLOCK_AHEAD.get());
        }
    };
    private static final Path SHOTS = Path.of("target", "console-screenshots");
    private static final ObjectMapper JSON = new ObjectMapper();

    private static Path state;
    private static SwtpmProcess aliceTpm;
    private static SwtpmProcess bobTpm;
    private static AttestationServer server;
    private static String callId;

    /** One host: its TPM, its log, its agent-side client. */
    private record Host(String name, TpmClient tpm, HostAttestation attestation, String akId,
                        MeasurementLog.Builder log) {
        void measure(EventType type, byte[] digest, String data) throws TpmException {
            log.append(type, digest, data);
            MeasurementLog built = log.build();
            tpm.pcrExtend(PCR, built.event(built.size() - 1).extendDigest());
        }

        void launch(byte[] jarDigest) throws TpmException {
            measure(EventType.JVM, sha256("java"), JAVA);
            measure(EventType.CLASSPATH_JAR, jarDigest, "softphone.jar");
            measure(EventType.CONFIGURATION, sha256("configuration"), "softphone.properties");
            MeasuredCommandLine argv = MeasuredCommandLine.of(ARGV);
            measure(EventType.COMMAND_LINE, argv.digest(), new String(argv.encoded(), StandardCharsets.UTF_8));
            measure(EventType.LAUNCH, sha256("launch " + name), "pid " + (name.length() * 1000 + 7));
        }

        String attest(String keyEvents) throws Exception {
            return attestation.attest(akId, log.build(), Optional.empty(),
                    keyEvents == null ? null : keyEvents.getBytes(StandardCharsets.UTF_8)).level().name();
        }
    }

    @BeforeAll
    static void runTheStory() throws Exception {
        state = Files.createTempDirectory("console-it");
        aliceTpm = SwtpmProcess.builder().withEkCertificate(true).start();
        bobTpm = SwtpmProcess.builder().withEkCertificate(true).start();
        AttestationServer.Builder b = AttestationServer.builder().stateDirectory(state.resolve("server"))
                .adminToken(Fixture.ADMIN_TOKEN).auditorToken(AUDITOR).policy(policy(1))
                .consoleSessionTimeouts(IDLE, Duration.ofHours(1)).appraisalInterval(Duration.ofSeconds(30))
                .clock(CLOCK);
        for (SwtpmProcess t : List.of(aliceTpm, bobTpm)) {
            for (X509Certificate c : Fixture.caChain(t)) {
                b.trustEkCa(c);
            }
        }
        server = b.start();
        AttestationClient client = Fixture.client(server);
        Host alice = host("alice", aliceTpm, client);
        Host bob = host("bob", bobTpm, client);
        alice.launch(sha256("jar"));
        bob.launch(sha256("jar"));
        assertEquals("MEASURED", alice.attest(null), "alice runs the approved release");
        assertEquals("MEASURED", bob.attest(null), "bob runs the approved release");
        // A second policy version (a longer result lifetime), for the policy diff.
        client.put("/v1/policy", policy(2), Fixture.ADMIN_TOKEN);
        // bob's softphone is tampered with: relaunched with another jar in the same boot.
        bob.measure(EventType.TERMINATED, sha256("exit"), "exit 0");
        bob.launch(sha256("a tampered jar"));
        String bobLevel = bob.attest(null);
        assertFalse(bobLevel.equals("MEASURED") || bobLevel.equals("HARDENED"), "tampered bob is " + bobLevel);
        // alice calls bob and refuses the call (bob's level is too low); bob reports taking the call in.
        callId = "a84b4c76e66710@alice.example";
        String now = Instant.now().toString();
        alice.attest("[{\"at\":\"" + now + "\",\"operation\":\"CALL_DECISION\",\"outcome\":\"REJECT\",\"callId\":\""
                + callId + "\",\"direction\":\"OUT\",\"peer\":\"sips:<b>bob</b>@127.0.0.1\",\"peerLevel\":\""
                + bobLevel + "\",\"requiredLevel\":\"MEASURED\"}]");
        bob.attest("[{\"at\":\"" + now + "\",\"operation\":\"CALL_DECISION\",\"outcome\":\"ACCEPT\",\"callId\":\""
                + callId + "\",\"direction\":\"IN\",\"peer\":\"sips:alice@127.0.0.1\",\"peerLevel\":\"MEASURED\","
                + "\"requiredLevel\":\"IDENTIFIED\"}]");
        alice.tpm().close();
        bob.tpm().close();
    }

    private static Host host(String name, SwtpmProcess swtpm, AttestationClient client) throws Exception {
        TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
        HostAttestation attestation = new HostAttestation(tpm, client);
        String akId = attestation.enroll(name, Fixture.enrollmentToken(client, name)).akId();
        byte[] baseline = tpm.pcrRead(PcrSelection.parse("sha256:" + PCR)).value(PCR);
        return new Host(name, tpm, attestation, akId, MeasurementLog.builder(PCR, baseline));
    }

    private static String policy(int version) throws Exception {
        Map<String, Object> release = new LinkedHashMap<>();
        release.put("name", RELEASE);
        release.put("jvm", Map.of(JAVA, hex(sha256("java"))));
        release.put("jars", Map.of("softphone.jar", hex(sha256("jar"))));
        release.put("configuration", Map.of("softphone.properties", hex(sha256("configuration"))));
        release.put("commandLine", ARGV);
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("version", version);
        p.put("measurementPcr", PCR);
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of(0, 1, 2, 3, 4, 5, 6, 7));
        p.put("releases", List.of(release));
        p.put("requireIsolation", false);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", version == 1 ? 300 : 120);
        return JSON.writeValueAsString(p);
    }

    @AfterAll
    static void stopAll() {
        if (server != null) {
            server.close();
        }
        for (SwtpmProcess t : new SwtpmProcess[] {aliceTpm, bobTpm}) {
            if (t != null) {
                t.close();
            }
        }
        if (state != null) {
            SwtpmProcess.deleteDirectory(state);
        }
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
                "--disable-dev-shm-usage", "--window-size=1400,1000", "--user-data-dir=" + profile,
                // The server under test has a self-signed certificate; this browser talks to nothing else.
                "--ignore-certificate-errors");
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driver)
                // not usingAnyFreePort(): Selenium picks outside the ephemeral range too, where our picks are, and
                // reserves nothing, so another test JVM could take its number before chromedriver binds it
                .usingPort(FreePorts.tcp()).build();
        ChromeDriver d = new ChromeDriver(service, options);
        d.manage().timeouts().pageLoadTimeout(Duration.ofSeconds(30));
        return d;
    }

    @Test
    void aSecurityTeamWalksTheConsole_findsTheTamperedJarAndBothSidesOfTheRefusedCall() throws Exception {
        Files.createDirectories(SHOTS);
        Path profile = Files.createTempDirectory("chromium-profile");
        ChromeDriver d = browser(profile);
        HttpServer attacker = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        try {
            String base = server.uri().toString();
            d.get(base + "/ui/");
            await(d, "the sign-in page", () -> d.getCurrentUrl().endsWith("/ui/sign-in"));
            checkPage(d, "sign-in");
            d.findElement(By.id("credential")).sendKeys(Fixture.ADMIN_TOKEN);
            d.findElement(By.id("sign-in")).click();
            await(d, "the fleet after sign-in", () -> d.getCurrentUrl().endsWith("/ui/fleet"));
            assertEquals("admin", d.findElement(By.id("role")).getText().toLowerCase(java.util.Locale.ROOT));

            // Fleet: both hosts; bob stands out by his level.
            WebElement aliceRow = d.findElement(By.cssSelector("#fleet tr[data-host='alice']"));
            WebElement bobRow = d.findElement(By.cssSelector("#fleet tr[data-host='bob']"));
            assertTrue(aliceRow.getText().contains("MEASURED") && aliceRow.getText().contains(RELEASE),
                    "alice's row: " + aliceRow.getText());
            String bobLevel = bobRow.findElement(By.cssSelector(".level")).getText();
            assertFalse(bobLevel.equals("MEASURED"), "bob's row: " + bobRow.getText());
            checkPage(d, "fleet");
            new org.openqa.selenium.support.ui.Select(d.findElement(By.name("level"))).selectByValue(bobLevel);
            d.findElement(By.cssSelector("#fleet-filters button")).click();
            await(d, "the filtered fleet", () -> d.getCurrentUrl().contains("level=" + bobLevel));
            List<WebElement> filtered = d.findElements(By.cssSelector("#fleet tbody tr"));
            assertEquals(1, filtered.size(), "only bob is " + bobLevel + ": " + d.findElement(By.id("fleet"))
                    .getText());
            checkPage(d, "fleet-filtered");

            // Host: bob's timeline, and what changed between his two appraisals.
            filtered.get(0).findElement(By.linkText("bob")).click();
            await(d, "bob's page", () -> d.getCurrentUrl().contains("/ui/host?name=bob"));
            String timeline = d.findElement(By.id("timeline")).getText();
            assertTrue(timeline.contains("APPRAISAL") && timeline.contains("CALL_DECISION")
                    && timeline.contains("ENROLLMENT"), "bob's timeline: " + timeline);
            checkPage(d, "host");
            List<WebElement> changed = d.findElements(By.cssSelector("#timeline tr.level-changed"));
            assertEquals(1, changed.size(), "one appraisal changed bob's level: " + timeline);
            WebElement tamperedAppraisal = changed.get(0);
            assertTrue(tamperedAppraisal.getText().contains(bobLevel), tamperedAppraisal.getText());
            tamperedAppraisal.findElement(By.className("diff-link")).click();
            await(d, "the diff", () -> d.getCurrentUrl().contains("/ui/diff"));
            assertEquals(bobLevel, d.findElement(By.id("diff-level")).getText());
            String events = d.findElement(By.id("events")).getText();
            WebElement jar = d.findElements(By.cssSelector("#events tr.event-changed")).stream()
                    .filter(r -> r.getText().contains("CLASSPATH_JAR")).findFirst().orElseThrow(() ->
                            new AssertionError("no changed jar in the diff: " + events));
            assertTrue(jar.getText().contains("softphone.jar") && jar.getText().contains(hex(sha256("jar")))
                    && jar.getText().contains(hex(sha256("a tampered jar"))), "the jar and both digests: "
                    + jar.getText());
            String claims = d.findElement(By.id("claims")).getText();
            assertTrue(d.findElements(By.cssSelector("#claims tr.moved")).stream()
                    .anyMatch(r -> r.getText().startsWith("executables")), "the executables claim moved: " + claims);
            assertFalse(d.findElement(By.id("reasons")).getText().isBlank(), "the policy says why");
            checkPage(d, "diff");

            // Calls: the refused call, both sides joined by its Call-ID.
            d.findElement(By.linkText("Calls")).click();
            await(d, "the calls", () -> d.getCurrentUrl().endsWith("/ui/calls"));
            checkPage(d, "calls");
            d.findElements(By.className("call-link")).get(0).click();
            await(d, "the call", () -> d.getCurrentUrl().contains("/ui/call?id="));
            assertEquals(callId, d.findElement(By.id("call-id")).getText());
            WebElement aliceSide = d.findElement(By.cssSelector(".side[data-host='alice']"));
            WebElement bobSide = d.findElement(By.cssSelector(".side[data-host='bob']"));
            assertTrue(aliceSide.getText().contains("REJECT") && aliceSide.getText().contains(bobLevel),
                    "alice refused, seeing bob at " + bobLevel + ": " + aliceSide.getText());
            assertTrue(aliceSide.getText().contains("sips:<b>bob</b>@127.0.0.1"), "the peer's URI as text, not"
                    + " markup: " + aliceSide.getText());
            assertTrue(d.findElements(By.cssSelector(".side b")).isEmpty(), "no element from the peer's URI");
            assertTrue(bobSide.getText().contains("ACCEPT") && bobSide.getText().contains("IN"),
                    "bob's side: " + bobSide.getText());
            checkPage(d, "call");

            // Policy: both versions and the diff between them.
            d.findElement(By.linkText("Policy")).click();
            await(d, "the policy", () -> d.getCurrentUrl().endsWith("/ui/policy"));
            assertEquals(2, d.findElements(By.cssSelector("#policy-versions tbody tr")).size());
            d.findElement(By.cssSelector("#policy-versions tr[data-version='2'] .diff-link")).click();
            await(d, "the policy diff", () -> d.getCurrentUrl().contains("diff=1"));
            String diff = d.findElement(By.id("policy-diff")).getText();
            assertTrue(diff.lines().anyMatch(l -> l.startsWith("-") && l.contains("\"resultTtlSeconds\" : 300"))
                    && diff.lines().anyMatch(l -> l.startsWith("+") && l.contains("\"resultTtlSeconds\" : 120")),
                    "the changed line: " + diff);
            checkPage(d, "policy");

            // Audit: the chain's state, and the records, filtered.
            d.findElement(By.linkText("Audit")).click();
            await(d, "the audit log", () -> d.getCurrentUrl().endsWith("/ui/audit"));
            assertTrue(d.findElement(By.id("chain-head")).getText().matches("record \\d+ · [0-9a-f]{64}"),
                    d.findElement(By.id("chain")).getText());
            // The log signs a checkpoint within its maximum unsigned age (10 s) of the first unsigned record.
            await(d, "a signed checkpoint", () -> {
                d.navigate().refresh();
                return d.findElement(By.id("chain-checkpoint")).getText().startsWith("record ");
            });
            checkPage(d, "audit");
            new org.openqa.selenium.support.ui.Select(d.findElement(By.name("type"))).selectByValue("CALL_DECISION");
            d.findElement(By.cssSelector("#audit-filters button")).click();
            await(d, "the filtered log", () -> d.getCurrentUrl().contains("type=CALL_DECISION"));
            assertEquals(2, d.findElements(By.cssSelector("#records tbody tr")).size(),
                    d.findElement(By.id("records")).getText());

            // A forged cross-site POST: another origin's page submits the sign-out form. Refused; still signed in.
            byte[] forged = ("<!DOCTYPE html><html><body><form id=f method=post action=\"" + base
                    + "/ui/sign-out\"><input name=csrf value=guessed></form>"
                    + "<script>document.getElementById('f').submit()</script></body></html>")
                    .getBytes(StandardCharsets.UTF_8);
            attacker.createContext("/", x -> {
                x.getResponseHeaders().add("Content-Type", "text/html");
                x.sendResponseHeaders(200, forged.length);
                x.getResponseBody().write(forged);
                x.close();
            });
            attacker.start();
            d.get("http://127.0.0.1:" + attacker.getAddress().getPort() + "/");
            await(d, "the forged post's answer", () -> d.getCurrentUrl().startsWith(base + "/ui/sign-out"));
            String refusal = d.findElement(By.id("error")).getText();
            assertTrue(refusal.contains("sign in first") || refusal.contains("cross-site request refused"),
                    "refused: " + refusal);
            d.get(base + "/ui/fleet");
            assertTrue(d.getCurrentUrl().endsWith("/ui/fleet"), "still signed in after the forged post: "
                    + d.getCurrentUrl());

            // Sign out: the old cookie is refused.
            Cookie session = d.manage().getCookieNamed("__Host-tpmphone-console");
            assertTrue(session != null && session.isHttpOnly() && session.isSecure()
                    && "Strict".equals(session.getSameSite()), "the session cookie: " + session);
            d.findElement(By.id("sign-out")).click();
            await(d, "the sign-in page after sign-out", () -> d.getCurrentUrl().endsWith("/ui/sign-in"));
            d.manage().addCookie(session);
            d.get(base + "/ui/audit");
            assertTrue(d.getCurrentUrl().endsWith("/ui/sign-in"), "the signed-out cookie is refused: "
                    + d.getCurrentUrl());

            // The idle timeout: a new session left alone ends, and its cookie is refused.
            d.findElement(By.id("credential")).sendKeys(AUDITOR);
            d.findElement(By.id("sign-in")).click();
            await(d, "the fleet as auditor", () -> d.getCurrentUrl().endsWith("/ui/fleet"));
            assertEquals("auditor", d.findElement(By.id("role")).getText().toLowerCase(java.util.Locale.ROOT));
            int live = server.consoleSessions();
            assertTrue(live >= 1, "the auditor's new session is live before it idles: " + live + " session(s)");
            // Left alone for the idle timeout and a second: the server's clock moves on rather than the test waiting
            // 13 s (IDLE stays long enough for the tour's slowest page load on a loaded machine).
            CLOCK_AHEAD.set(IDLE.plusSeconds(1));
            assertEquals(0, server.consoleSessions(), "the session idle for " + IDLE.plusSeconds(1).toSeconds()
                    + " s ended (its idle timeout is " + IDLE.toSeconds() + " s, its absolute one 1 h)");
            d.get(base + "/ui/calls");
            assertTrue(d.getCurrentUrl().endsWith("/ui/sign-in"), "the idle cookie is refused: "
                    + d.getCurrentUrl());

            // Zero CSP violations reported on any page we showed.
            d.findElement(By.id("credential")).sendKeys(Fixture.ADMIN_TOKEN);
            d.findElement(By.id("sign-in")).click();
            await(d, "the fleet again", () -> d.getCurrentUrl().endsWith("/ui/fleet"));
            d.get(base + "/ui/csp-reports");
            assertEquals("0", d.findElement(By.id("csp-count")).getText(), "CSP violations: "
                    + d.findElement(By.id("csp-recent")).getText());
        } finally {
            attacker.stop(0);
            d.quit();
            SwtpmProcess.deleteDirectory(profile);
        }
    }

    /** No script element and no inline style on the page; a screenshot for the docs. */
    private static void checkPage(ChromeDriver d, String name) throws Exception {
        assertTrue(d.findElements(By.tagName("script")).isEmpty(), "a script element on " + name + ": "
                + d.getPageSource());
        assertTrue(d.findElements(By.cssSelector("[style], style")).isEmpty(), "inline style on " + name);
        Path shot = d.getScreenshotAs(OutputType.FILE).toPath();
        Files.copy(shot, SHOTS.resolve(name + ".png"), StandardCopyOption.REPLACE_EXISTING);
    }

    private static void await(WebDriver d, String what, BooleanSupplier condition) {
        new WebDriverWait(d, Duration.ofSeconds(30)).withMessage(() -> what + " did not show; the browser is at "
                + d.getCurrentUrl() + ": " + d.getTitle()).until(x -> condition.getAsBoolean());
    }

    private static byte[] sha256(String s) {
        return HashAlgorithm.SHA256.digest(s.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }
}
