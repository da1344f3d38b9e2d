package io.tpmphone.swtpm;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** What a test saw of an swtpm instance, for assertion messages: address, process, state and the tail of its log. */
final class Seen {
    private static final int LOG_LINES = 20;

    private Seen() {
    }

    /** The instance, its pid and whether it runs, whether its state exists, and the last lines of its log. */
    static String swtpm(SwtpmProcess tpm) {
        String pid;
        try {
            pid = tpm.pid() + (tpm.isAlive() ? " (alive)" : " (not alive)");
        } catch (RuntimeException e) {
            pid = "unknown (" + e + ")";
        }
        return tpm + ", pid " + pid + ", state directory " + (Files.isDirectory(tpm.stateDirectory()) ? "exists"
                : "absent") + "; " + logTail(tpm.logFile());
    }

    /** The last lines of a log file, or why there are none. */
    static String logTail(Path log) {
        if (!Files.exists(log)) {
            return "no log at " + log;
        }
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return "log " + log + " (last " + Math.min(LOG_LINES, lines.size()) + " of " + lines.size() + " lines): "
                    + String.join("\n", lines.subList(Math.max(0, lines.size() - LOG_LINES), lines.size()));
        } catch (IOException | RuntimeException e) {
            return "cannot read log " + log + ": " + e;
        }
    }

    /** Whether a process id is alive, as the assertion message says it. */
    static String process(long pid) {
        return ProcessHandle.of(pid).map(p -> "pid " + pid + " is " + (p.isAlive() ? "alive: " + p.info() : "gone"))
                .orElse("pid " + pid + " is gone");
    }
}
