package io.tpmphone.swtpm;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A Java main class run the way a local attacker would like it: in its own JVM under {@code umask 000}, so whatever
 * it creates without explicit permissions is open to every user, and traced by {@code strace(1)}, which records the
 * mode each file is <em>created</em> with — before any {@code chmod} could narrow it. A file created 0666 and
 * restricted a moment later is caught as surely as one left open; no polling, no race.
 *
 * <p>{@link #assertOwnerOnly} then checks both: every regular file created under a directory was created without
 * group or other permissions, and nothing under it (files, directories) has any now. Needs {@code strace} and a
 * POSIX system; {@link #available()} says whether it can run. Not thread-safe: one test thread per instance.
 */
public final class FileCreationTrace implements AutoCloseable {
    /** One file or directory creation seen by strace: the path and the mode passed to open(2)/mkdir(2). */
    public record Creation(Path path, String mode, boolean directory) {
        boolean groupOrOtherAccessible() {
            return (Integer.parseInt(mode, 8) & 0077) != 0;
        }
    }

    private static final Pattern CALL = Pattern.compile(
            "^(\\d+\\.\\d+) (openat|open|creat|mkdir|mkdirat)\\((?:AT_FDCWD, |\\d+, )?\"([^\"]*)\"(.*)\\) = \\d+");
    private static final Pattern MODE = Pattern.compile(", (0[0-7]+)$");

    private final Process process;
    private final Path traceDirectory;
    private final Path stderr;
    private final BufferedReader stdout;

    private FileCreationTrace(Process process, Path traceDirectory, Path stderr) {
        this.process = process;
        this.traceDirectory = traceDirectory;
        this.stderr = stderr;
        this.stdout = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    }

    /** Whether strace can trace here (installed, and ptrace allowed). */
    public static boolean available() {
        try {
            Process p = new ProcessBuilder("strace", "-f", "-qq", "-e", "trace=openat", "-o", "/dev/null", "true")
                    .redirectErrorStream(true).start();
            p.getInputStream().transferTo(java.io.OutputStream.nullOutputStream());
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * Starts {@code mainClass} (on this JVM's class path) with {@code args} under umask 000 and strace; the trace and
     * the process's stderr go to {@code traceDirectory}, which must exist.
     */
    public static FileCreationTrace start(Path traceDirectory, String mainClass, List<String> jvmOptions,
                                          String... args) throws IOException {
        Path stderr = traceDirectory.resolve("stderr.log");
        List<String> java = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString()));
        java.addAll(jvmOptions);
        java.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass));
        java.addAll(List.of(args));
        List<String> command = new ArrayList<>(List.of("/bin/sh", "-c", "umask 000 && exec \"$@\"", "sh",
                "strace", "-f", "-ff", "-qq", "--seccomp-bpf", "-ttt", "-s", "4096", "-e", "status=successful",
                "-e", "trace=openat,open,creat,mkdir,mkdirat", "-o", traceDirectory.resolve("trace").toString()));
        command.addAll(java);
        Process process = new ProcessBuilder(command).redirectError(stderr.toFile()).start();
        return new FileCreationTrace(process, traceDirectory, stderr);
    }

    /**
     * Reads stdout until a line starts with {@code prefix} (other lines, e.g. logging, are skipped), then keeps
     * draining stdout in the background so the process never blocks on it; fails if the process ends first.
     */
    public String awaitLine(String prefix) throws IOException {
        StringBuilder skipped = new StringBuilder();
        for (String line; (line = stdout.readLine()) != null; ) {
            if (line.startsWith(prefix)) {
                Thread drain = new Thread(() -> {
                    try {
                        stdout.transferTo(java.io.Writer.nullWriter());
                    } catch (IOException ignored) {
                        // the process ended
                    }
                }, "drain-traced-stdout");
                drain.setDaemon(true);
                drain.start();
                return line;
            }
            if (skipped.length() < 20_000) {
                skipped.append(line).append('\n');
            }
        }
        throw new AssertionError("the traced process ended without a line '" + prefix + "...'; its stdout: " + skipped
                + "its stderr: " + stderr());
    }

    /** Waits for the process to end by itself; returns its exit status. */
    public int awaitExit(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new AssertionError("the traced process did not end within " + timeout + "; its stderr: " + stderr());
        }
        return process.exitValue();
    }

    /** Stops the traced JVM with SIGTERM (its shutdown hooks run) and waits for it and strace to end. */
    @Override
    public void close() {
        process.children().forEach(ProcessHandle::destroy); // strace's child: the traced JVM
        boolean ended;
        try {
            ended = process.waitFor(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            ended = false;
        }
        if (!ended) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
        }
    }

    /** What the traced process wrote to stderr so far. */
    public String stderr() {
        try {
            return Files.readString(stderr);
        } catch (IOException e) {
            return e.toString();
        }
    }

    /** The first creation of every path under {@code root} in the trace so far, in the order they happened. */
    public List<Creation> creations(Path root) throws IOException {
        record Timed(double time, Creation creation) {
        }
        List<Timed> all = new ArrayList<>();
        try (Stream<Path> files = Files.list(traceDirectory)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.getFileName().toString().startsWith("trace"))::iterator) {
                for (String line : Files.readAllLines(f, StandardCharsets.ISO_8859_1)) {
                    Matcher m = CALL.matcher(line);
                    if (!m.find()) {
                        continue;
                    }
                    String call = m.group(2);
                    String rest = m.group(4);
                    boolean directory = call.startsWith("mkdir");
                    if (!directory && !call.equals("creat") && !rest.contains("O_CREAT")) {
                        continue;
                    }
                    Matcher mode = MODE.matcher(rest);
                    Path path = Path.of(m.group(3));
                    if (mode.find() && path.isAbsolute() && path.normalize().startsWith(root)) {
                        all.add(new Timed(Double.parseDouble(m.group(1)),
                                new Creation(path.normalize(), mode.group(1), directory)));
                    }
                }
            }
        }
        all.sort(Comparator.comparingDouble(Timed::time));
        Map<Path, Creation> first = new LinkedHashMap<>();
        all.forEach(t -> first.putIfAbsent(t.creation().path(), t.creation()));
        return List.copyOf(first.values());
    }

    /**
     * Asserts that every regular file created under {@code root} was created without group or other permissions, and
     * that no file or directory under it has any now, except those {@code exempt} accepts (with what lies below them).
     * Directories are checked by their mode now only: a directory's mode is checked at every lookup, so a directory
     * made 0777 and restricted at once inside an owner-only parent has leaked nothing, unlike a file descriptor.
     *
     * @return the creations checked, for the test to assert which files it expected
     */
    public List<Creation> assertOwnerOnly(Path root, Predicate<Path> exempt) throws IOException {
        List<Creation> creations = creations(root);
        List<String> problems = new ArrayList<>();
        for (Creation c : creations) {
            if (!c.directory() && c.groupOrOtherAccessible() && !exempted(root, c.path(), exempt)) {
                problems.add(c.path() + " created with mode " + c.mode());
            }
        }
        try (Stream<Path> tree = Files.walk(root)) {
            for (Path p : (Iterable<Path>) tree::iterator) {
                if (Files.isSymbolicLink(p) || exempted(root, p, exempt)) {
                    continue;
                }
                Set<PosixFilePermission> now = Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS);
                String mode = PosixFilePermissions.toString(now);
                if (!mode.endsWith("------")) {
                    problems.add(p + " is " + mode + " now");
                }
            }
        } catch (java.io.UncheckedIOException e) {
            throw e.getCause();
        }
        if (!problems.isEmpty()) {
            throw new AssertionError("accessible to other users under umask 000:\n  " + String.join("\n  ", problems)
                    + "\nall creations under " + root + ": " + creations);
        }
        return creations;
    }

    private static boolean exempted(Path root, Path p, Predicate<Path> exempt) {
        for (Path q = p; q != null && q.startsWith(root); q = q.getParent()) {
            if (exempt.test(q)) {
                return true;
            }
        }
        return false;
    }
}
