package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code tpmphone swtpm start|stop}, each in its own JVM: the swtpm must outlive the command that started it. */
class SwtpmCommandIT {

    private record Run(int exit, String out, String err) {
        @Override
        public String toString() {
            return "exit code " + exit + ", stderr: " + err + ", stdout: " + out;
        }
    }

    private static Run tpmphone(Path home, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dtpmphone.home=" + home, "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), () -> "tpmphone " + String.join(" ", args)
                + " finished within 60 s; it is still running: " + p.info());
        return new Run(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8),
                new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
    }

    @Test
    void startedSwtpm_outlivesTheCommand_servesTpmCommands_andStops(@TempDir Path home) throws Exception {
        Run start = tpmphone(home, "swtpm", "start", "--name", "ci", "--ek-cert", "--json");
        assertEquals(0, start.exit(), start.err());
        long pid = -1;
        try {
            JsonNode info = new ObjectMapper().readTree(start.out());
            pid = info.get("pid").asLong();
            String uri = info.get("tpmUri").asText();
            long started = pid;
            assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false),
                    () -> "swtpm still running after the command ended; pid " + started + " is gone; start said "
                            + info);
            Path instance = home.resolve("swtpm").resolve("ci");
            assertEquals("swtpm:socket=" + instance.resolve("run/server.sock"), uri, "a Unix socket, not a port");
            assertFalse(info.has("port") || info.has("controlPort"), "no TCP port: " + info);
            assertTrue(info.get("tcti").asText().startsWith("cmd:socat - UNIX-CONNECT:"), info.toString());
            assertEquals("rwx------", mode(instance), "the instance directory is owner-only");
            assertEquals("rwx------", mode(instance.resolve("run")), "the socket directory is owner-only");
            assertEquals("rwx------", mode(instance.resolve("state")), "the state directory is owner-only");
            assertEquals(instance.resolve("state.key").toString(), info.get("stateKeyFile").asText(), info::toString);
            assertEquals("rw-------", mode(instance.resolve("state.key")), "the state key is owner-only");
            assertTrue(Files.exists(Path.of(info.get("caCertificate").asText())),
                    () -> "CA certificate kept: " + info);

            Run infoRun = tpmphone(home, "tpm", "info", "--tpm", uri);
            assertEquals(0, infoRun.exit(), infoRun.err());
            assertTrue(infoRun.out().contains("manufacturer: IBM"), () -> "tpm info names the manufacturer IBM: "
                    + infoRun);

            Run pcrs = tpmphone(home, "tpm", "pcrread", "--tpm", uri, "--pcrs", "sha256:16", "--json");
            assertEquals(0, pcrs.exit(), pcrs.err());
            assertEquals("00".repeat(32), new ObjectMapper().readTree(pcrs.out()).at("/pcrs/16").asText(),
                    () -> "PCR 16 of a fresh swtpm is all zeros: " + pcrs.out());

            Run again = tpmphone(home, "swtpm", "start", "--name", "ci");
            assertEquals(1, again.exit(), again::toString);
            assertTrue(again.err().contains("already running"), () -> "a second start says ci is already running: "
                    + again);
        } finally {
            Run stop = tpmphone(home, "swtpm", "stop", "--name", "ci", "--purge");
            assertEquals(0, stop.exit(), stop.err());
        }
        long stopped = pid;
        assertTrue(ProcessHandle.of(stopped).map(h -> !h.isAlive()).orElse(true), () -> "swtpm stopped; pid "
                + stopped + " is alive: " + ProcessHandle.of(stopped).map(ProcessHandle::info));
        assertFalse(Files.exists(home.resolve("swtpm").resolve("ci")), () -> "--purge deletes the state; left: "
                + java.util.Arrays.toString(home.resolve("swtpm").resolve("ci").toFile().list()));
        Run stopAgain = tpmphone(home, "swtpm", "stop", "--name", "ci");
        assertNotEquals(0, stopAgain.exit(), stopAgain::toString);
        assertTrue(stopAgain.err().contains("no swtpm 'ci' is running"), () -> "stopping again says no swtpm 'ci' "
                + "is running: " + stopAgain);
    }

    /**
     * The tpm2-tools line {@code swtpm start} prints, pasted into a shell, for a {@code TPMPHONE_HOME} whose name has
     * quotes and socat's syntax: it used to wrap the TCTI in single quotes as it was, so a quote in the path ended the
     * word, socat split the address at ':' and {@code !!}, and what followed a ';' ran.
     */
    @Test
    @org.junit.jupiter.api.Timeout(180)
    void theTpm2ToolsLine_worksPastedIntoAShell_whenTheHomeHasQuotesAndSocatSyntax(@TempDir Path dir)
            throws Exception {
        Path home = dir.resolve("o'brien:x!!y;touch${IFS}pwned;'");
        Run start = tpmphone(home, "swtpm", "start", "--name", "ci");
        assertEquals(0, start.exit(), start::toString);
        try {
            String line = start.out().lines().filter(l -> l.contains("export TPM2TOOLS_TCTI=")).findFirst()
                    .orElseThrow(() -> new AssertionError("no tpm2-tools line in: " + start));
            String export = line.substring(line.indexOf("export "));
            Process p = new ProcessBuilder("/bin/sh", "-c", export + " && exec tpm2_getrandom --hex 8")
                    .directory(dir.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), () -> "the shell ended: " + out);
            assertTrue(p.exitValue() == 0 && out.matches("[0-9a-f]{16}\\s*"), () -> "`" + export
                    + " && tpm2_getrandom --hex 8` reached the swtpm: exit code " + p.exitValue() + ", output " + out);
            try (java.util.stream.Stream<Path> files = Files.list(dir)) {
                List<String> names = files.map(f -> f.getFileName().toString()).toList();
                assertEquals(List.of(home.getFileName().toString()), names, () -> "nothing in the shell's working"
                        + " directory but the home: no command of the path ran; the line was " + export);
            }
        } finally {
            Run stop = tpmphone(home, "swtpm", "stop", "--name", "ci", "--purge");
            assertEquals(0, stop.exit(), stop::toString);
        }
    }

    private static String mode(Path path) throws java.io.IOException {
        return java.nio.file.attribute.PosixFilePermissions.toString(java.nio.file.Files.getPosixFilePermissions(path));
    }

    @Test
    void badInstanceName_isAUsageErrorNotAnException(@TempDir Path home) throws Exception {
        for (String name : new String[] {"../etc", "..", "."}) {
            Run bad = tpmphone(home, "swtpm", "start", "--name", name);
            assertEquals(2, bad.exit(), () -> "--name " + name + " is a usage error: " + bad);
            assertTrue(bad.err().contains("--name must be"), () -> "--name " + name + " says what a name must be: "
                    + bad);
        }
    }
}
