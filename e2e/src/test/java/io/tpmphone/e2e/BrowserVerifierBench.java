package io.tpmphone.e2e;

import io.tpmphone.server.audit.BrowserVerifier;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.openqa.selenium.By;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * Not a test: how long the in-browser verifier takes on a large export in Debian's headless chromium (docs/console.md,
 * "How fast"). Give it an export and its key, e.g. those {@code ./tpmphone bench audit-verify --keep} leaves:
 * {@code java -cp <e2e test class path> io.tpmphone.e2e.BrowserVerifierBench EXPORT KEY [RUNS]}. Prints the time the
 * page measured (reading the file, hashing, signatures) and its verdict, per run.
 */
public final class BrowserVerifierBench {
    private BrowserVerifierBench() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: BrowserVerifierBench EXPORT KEY [RUNS]");
            System.exit(2);
        }
        Path export = Path.of(args[0]).toAbsolutePath();
        Path key = Path.of(args[1]).toAbsolutePath();
        int runs = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        Path dir = Files.createTempDirectory("verifier-bench");
        BrowserVerifier.writeTo(dir);
        Path profile = Files.createTempDirectory("chromium-profile");
        ChromeOptions options = new ChromeOptions();
        options.setBinary(new File("/usr/bin/chromium"));
        options.addArguments("--headless=new", "--no-sandbox", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile);
        ChromeDriver d = new ChromeDriver(new ChromeDriverService.Builder().usingDriverExecutable(
                new File("/usr/bin/chromedriver")).usingPort(io.tpmphone.swtpm.testing.FreePorts.tcp()).build(),
                options);
        try {
            for (int i = 0; i < runs; i++) {
                d.get(dir.resolve("verify.html").toUri().toString());
                new WebDriverWait(d, Duration.ofSeconds(30)).until(x -> "ready".equals(state(d)));
                d.findElement(By.id("export-file")).sendKeys(export.toString());
                d.findElement(By.id("key-file")).sendKeys(key.toString());
                long t = System.nanoTime();
                d.findElement(By.id("verify")).click();
                new WebDriverWait(d, Duration.ofMinutes(20)).pollingEvery(Duration.ofMillis(200))
                        .until(x -> "done".equals(state(d)) || "error".equals(state(d)));
                double seconds = (System.nanoTime() - t) / 1e9;
                System.out.printf(java.util.Locale.ROOT, "run %d: page %s ms, driver %.2f s: %s%n", i + 1,
                        d.executeScript("return document.getElementById('elapsed-ms').textContent"), seconds,
                        d.executeScript("return document.getElementById('summary').textContent || "
                                + "document.getElementById('error').textContent"));
            }
        } finally {
            d.quit();
        }
    }

    private static String state(ChromeDriver d) {
        return String.valueOf(d.executeScript("return document.body.dataset.state"));
    }
}
