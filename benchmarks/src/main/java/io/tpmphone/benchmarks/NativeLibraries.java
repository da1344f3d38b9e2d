package io.tpmphone.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/** The shared libraries mapped into this process (Linux {@code /proc/self/maps}): which native crypto code runs. */
final class NativeLibraries {
    private NativeLibraries() {
    }

    /**
     * File names (without directories) of the mapped libraries whose names contain one of {@code parts}, in
     * the order they are mapped; empty where {@code /proc/self/maps} cannot be read.
     */
    static List<String> mapped(String... parts) {
        Set<String> names = new LinkedHashSet<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/self/maps"));
        } catch (IOException e) {
            return List.of();
        }
        for (String line : lines) {
            int slash = line.indexOf('/');
            if (slash < 0) {
                continue;
            }
            String name = line.substring(line.lastIndexOf('/') + 1).strip();
            for (String part : parts) {
                if (name.contains(part)) {
                    names.add(name);
                }
            }
        }
        return List.copyOf(names);
    }
}
