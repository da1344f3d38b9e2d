package io.tpmphone.swtpm.internal;

import io.tpmphone.swtpm.SwtpmNotInstalledException;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

/** Finds swtpm's programs: an explicit path, the directory of {@code swtpm} itself, {@code PATH}, {@code /usr/bin}. */
public final class Executables {
    private static final List<Path> FALLBACK_DIRECTORIES = List.of(Path.of("/usr/bin"), Path.of("/usr/local/bin"));

    private Executables() {
    }

    /**
     * Checks an explicitly configured program.
     *
     * @throws SwtpmNotInstalledException if it is not an executable regular file
     */
    public static Path requireExecutable(String program, Path path) {
        if (Files.isRegularFile(path) && Files.isExecutable(path)) {
            return path.toAbsolutePath();
        }
        throw new SwtpmNotInstalledException(program, path.toString());
    }

    /**
     * Finds {@code program}, looking first in {@code preferredDirectory} (may be null), then on {@code PATH}, then
     * in {@code /usr/bin} and {@code /usr/local/bin}.
     *
     * @throws SwtpmNotInstalledException if it is found nowhere
     */
    public static Path find(String program, Path preferredDirectory) {
        Set<Path> directories = new LinkedHashSet<>();
        if (preferredDirectory != null) {
            directories.add(preferredDirectory);
        }
        String pathVariable = System.getenv("PATH");
        if (pathVariable != null) {
            for (String entry : pathVariable.split(File.pathSeparator)) {
                if (!entry.isBlank()) {
                    directories.add(Path.of(entry));
                }
            }
        }
        directories.addAll(FALLBACK_DIRECTORIES);
        List<Path> tried = new ArrayList<>();
        for (Path directory : directories) {
            Path candidate = directory.resolve(program);
            tried.add(candidate);
            if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
                return candidate.toAbsolutePath();
            }
        }
        throw new SwtpmNotInstalledException(program,
                tried.stream().map(Path::toString).collect(Collectors.joining(", ")));
    }
}
