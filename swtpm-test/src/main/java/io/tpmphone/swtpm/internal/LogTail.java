package io.tpmphone.swtpm.internal;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/** Reads the end of swtpm's log files for error messages. */
public final class LogTail {
    private static final int MAX_BYTES = 16 * 1024;

    private LogTail() {
    }

    /** Current size of {@code file}, 0 if it does not exist; a later {@link #since} reads only what came after. */
    public static long size(Path file) {
        try {
            return Files.exists(file) ? Files.size(file) : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    /** The last {@code maxLines} lines written to {@code file} after byte {@code offset}; "" if none. */
    public static String since(Path file, long offset, int maxLines) {
        if (!Files.isRegularFile(file)) {
            return "";
        }
        try (RandomAccessFile in = new RandomAccessFile(file.toFile(), "r")) {
            long start = Math.max(offset, in.length() - MAX_BYTES);
            if (start >= in.length()) {
                return "";
            }
            byte[] bytes = new byte[(int) (in.length() - start)];
            in.seek(start);
            in.readFully(bytes);
            List<String> lines = Arrays.stream(new String(bytes, StandardCharsets.UTF_8).split("\\R"))
                    .filter(line -> !line.isBlank())
                    .toList();
            return String.join("\n", lines.subList(Math.max(0, lines.size() - maxLines), lines.size()));
        } catch (IOException e) {
            return "(cannot read " + file + ": " + e + ")";
        }
    }

    /** A message block "name (path):\n  lines" for an exception message, or "" when there is nothing to show. */
    public static String describe(String name, Path file, long offset, int maxLines) {
        String tail = since(file, offset, maxLines);
        if (tail.isEmpty()) {
            return "";
        }
        return "\n--- last lines of " + name + " (" + file + ") ---\n" + tail;
    }
}
