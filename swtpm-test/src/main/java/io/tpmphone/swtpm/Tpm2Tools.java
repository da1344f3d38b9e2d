package io.tpmphone.swtpm;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs tpm2-tools commands for tests — against a {@link SwtpmProcess} ({@code -T} with its
 * {@link SwtpmProcess#tctiString()}) or offline (e.g. {@code tpm2_checkquote}) — with a 30 s timeout. A TPM client of yours must not hold the swtpm connection
 * meanwhile: swtpm serves one connection at a time. Failures to run the tool are {@link AssertionError}s, so a test
 * that uses it fails clearly. Stateless and thread-safe.
 */
public final class Tpm2Tools {
    private static final long TIMEOUT_SECONDS = 30;

    private Tpm2Tools() {
    }

    /** What a tool printed and how it exited. */
    public record Result(int exitCode, String stdout, String stderr) {
        /** This result if the tool exited 0; otherwise an {@link AssertionError} with what it printed. */
        public Result requireSuccess() {
            if (exitCode != 0) {
                throw new AssertionError("tpm2-tools exited " + exitCode + ": " + stderr + stdout);
            }
            return this;
        }
    }

    /** Runs {@code tool -T <tcti of tpm> args...}. */
    public static Result run(SwtpmProcess tpm, String tool, String... args) {
        List<String> command = new ArrayList<>(List.of(tool, "-T", tpm.tctiString()));
        command.addAll(List.of(args));
        return execute(command);
    }

    /** Runs a tool that needs no TPM, such as {@code tpm2_checkquote}. */
    public static Result runOffline(String tool, String... args) {
        List<String> command = new ArrayList<>(List.of(tool));
        command.addAll(List.of(args));
        return execute(command);
    }

    private static Result execute(List<String> command) {
        try {
            Path out = Files.createTempFile("tpm2-tools-", ".out");
            Path err = Files.createTempFile("tpm2-tools-", ".err");
            try {
                Process process = new ProcessBuilder(command)
                        .redirectOutput(out.toFile())
                        .redirectError(err.toFile())
                        .start();
                if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    throw new AssertionError(String.join(" ", command) + " did not finish within " + TIMEOUT_SECONDS
                            + " s");
                }
                return new Result(process.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                        Files.readString(err, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new AssertionError("cannot run " + command + " (is tpm2-tools installed? ./tpmphone test installs it)",
                    e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while running " + command, e);
        }
    }
}
