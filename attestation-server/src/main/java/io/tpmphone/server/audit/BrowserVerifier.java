package io.tpmphone.server.audit;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * The in-browser verifier of audit exports: one static page ({@code verify.html}) and its script and stylesheet,
 * which the console serves at {@code /ui/verify} and {@code tpmphone audit verifier} writes into a directory to be
 * opened from disk, with no server involved. The script re-hashes the chain with WebCrypto and checks the checkpoint
 * and head signatures, with the rules and messages of {@link AuditVerifier#verifyExport} (docs/console.md).
 *
 * <p>The same bytes both ways: the page names its files relatively ({@code static/verify.js},
 * {@code static/console.css}), which resolve under {@code /ui/static/} on the server and next to the page on disk.
 * Stateless and thread-safe.
 */
public final class BrowserVerifier {
    /** File name of the page, relative to the directory it is written to. */
    public static final String PAGE = "verify.html";
    /** File names under the page's directory, and their content types. */
    private static final Map<String, String> FILES = Map.of(
            PAGE, "text/html; charset=utf-8",
            "static/verify.js", "text/javascript; charset=utf-8",
            "static/console.css", "text/css; charset=utf-8");

    private BrowserVerifier() {
    }

    /** The bytes of one of the verifier's files ({@code verify.html}, {@code static/verify.js}, …), if it is one. */
    public static Optional<byte[]> file(String name) throws IOException {
        Objects.requireNonNull(name, "name");
        if (!FILES.containsKey(name)) {
            return Optional.empty();
        }
        String resource = "/console/" + name.substring(name.lastIndexOf('/') + 1);
        try (InputStream in = BrowserVerifier.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IOException("resource " + resource + " is missing from the server jar");
            }
            return Optional.of(in.readAllBytes());
        }
    }

    /** The content type of one of the verifier's files. */
    public static String contentType(String name) {
        String type = FILES.get(name);
        if (type == null) {
            throw new IllegalArgumentException("not a file of the verifier: " + name);
        }
        return type;
    }

    /**
     * Writes the page and its files into {@code directory} (created if missing), each replaced atomically; never
     * through a symbolic link. Returns the files written.
     */
    public static List<Path> writeTo(Path directory) throws IOException {
        Objects.requireNonNull(directory, "directory");
        List<Path> written = new ArrayList<>();
        for (String name : List.of(PAGE, "static/verify.js", "static/console.css")) {
            Path target = directory.resolve(name);
            Files.createDirectories(target.getParent());
            if (Files.isSymbolicLink(target)) {
                throw new IOException(target + " is a symbolic link; remove it or choose another directory");
            }
            Path partial = Files.createTempFile(target.getParent(), target.getFileName() + ".", ".partial");
            try {
                Files.write(partial, file(name).orElseThrow());
                Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(partial);
            }
            written.add(target.toRealPath(LinkOption.NOFOLLOW_LINKS));
        }
        return written;
    }
}
