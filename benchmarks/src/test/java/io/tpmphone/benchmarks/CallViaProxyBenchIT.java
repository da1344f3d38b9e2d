package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code ./tpmphone bench call --via-proxy} at its smallest size, as the script runs it: two measured hosts, a real
 * kamailio with TLS, one round of two calls of each kind. Every call must be an established DTLS-SRTP call through
 * the proxy whose far end is what its kind says (MEASURED end to end with the evidence, UNATTESTED without), or the
 * benchmark fails; the output has both rows and the comparison with the targets. Not a measurement: the figures of a
 * run this small say nothing (benchmarks/README.md has measured ones).
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class CallViaProxyBenchIT {
    @TempDir
    Path dir;

    @Test
    void benchCallViaProxy_runsBothKindsThroughKamailio_andPrintsTheComparison() {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = BenchMain.commandLine(Map.of());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int exit = cli.execute("bench", "call", "--via-proxy", "--rounds", "1", "--calls", "2", "--warmup", "0",
                "--directory", dir.toString());
        String seen = out + "\nstderr:\n" + err;
        assertEquals(0, exit, seen);
        assertTrue(seen.matches("(?s).*evidence end to end +2 .*") && seen.matches("(?s).*no evidence +2 .*"),
                () -> "two calls of each kind: " + seen);
        assertTrue(seen.contains("evidence/no-evidence p50 ratio: ") && seen.contains("the evidence adds ")
                && seen.contains("(target <= 30: ") && seen.contains("(target <= 150: "),
                () -> "the comparison with the targets: " + seen);
    }
}
