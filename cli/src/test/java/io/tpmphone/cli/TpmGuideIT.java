package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docs/tpm.md's walk-through, run as written, each command in its own process: a swtpm started and stopped, its
 * info, PCRs and a quote read with tpmphone, and the quote checked by tpm2-tools' {@code tpm2_checkquote} with the
 * documented arguments. Only the swtpm socket ({@code S}) and the output directory ({@code q}) are this run's.
 */
class TpmGuideIT {
    private static final Pattern URI = Pattern.compile("swtpm:socket=(/\\S+/server\\.sock)");

    private static String run(Path home, List<String> args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dtpmphone.home=" + home, "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(args);
        return exec(cmd);
    }

    private static String exec(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), () -> String.join(" ", cmd) + " finished within 60 s; output: "
                + out);
        assertEquals(0, p.exitValue(), () -> String.join(" ", cmd) + " failed:\n" + out);
        return out;
    }

    @Test
    void theTpmWalkThrough_runsAsDocumented(@TempDir Path dir) throws Exception {
        Path guide = DocCommands.documents().stream().filter(d -> d.endsWith("tpm.md")).findFirst().orElseThrow();
        Path home = dir.resolve("home");
        Path q = dir.resolve("q");
        String started = run(home, List.of(DocCommands.find(guide, "swtpm start").substitute(Map.of(), Map.of())));
        Matcher m = URI.matcher(started);
        assertTrue(m.find(), () -> "swtpm start prints its URI: " + started);
        Map<String, String> parts = Map.of("socket=S", "socket=" + m.group(1));
        try {
            String info = run(home, List.of(DocCommands.find(guide, "tpm info").substitute(Map.of(), parts)));
            assertTrue(info.toLowerCase(java.util.Locale.ROOT).contains("manufacturer"),
                    () -> "tpm info names the manufacturer: " + info);
            String pcrs = run(home, List.of(DocCommands.find(guide, "tpm pcrread").substitute(Map.of(), parts)));
            com.fasterxml.jackson.databind.JsonNode read = new com.fasterxml.jackson.databind.ObjectMapper()
                    .readTree(pcrs);
            assertTrue(read.toString().contains("14") && read.size() > 0, "PCRs 0-7 and 14 as JSON: " + pcrs);
            run(home, List.of(DocCommands.find(guide, "tpm quote").substitute(Map.of("q", q.toString()), parts)));
            // The documented tpm2_checkquote line, with the quote's directory.
            String check = Files.readAllLines(guide).stream().map(String::strip)
                    .filter(l -> l.startsWith("tpm2_checkquote ")).findFirst().orElseThrow();
            List<String> checkArgs = new ArrayList<>();
            for (String a : check.split("\\s+")) {
                checkArgs.add(a.startsWith("q/") ? q.resolve(a.substring(2)).toString() : a);
            }
            exec(checkArgs);
        } finally {
            run(home, List.of(DocCommands.find(guide, "swtpm stop").substitute(Map.of(), Map.of())));
        }
        Path instances = home.resolve("swtpm");
        try (var left = Files.exists(instances) ? Files.list(instances) : java.util.stream.Stream.<Path>empty()) {
            List<Path> remaining = left.toList();
            assertTrue(remaining.isEmpty(), () -> "--purge deleted the swtpm's state; left: " + remaining);
        }
    }
}
