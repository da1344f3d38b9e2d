package io.tpmphone.server.internal;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Base64;
import java.util.Objects;

/**
 * The file that holds the server's admin token, as {@code tpmphone server --admin-token-file F
 * [--generate-admin-token]} uses it. Whoever can choose this file's content is the server's admin, and whoever can
 * read it can act as one, so it is read only if nobody but the server's user and root can change it or what leads to
 * it, and nobody else can read it ({@link OwnerOnlyFiles#readPrivateFile}: a regular file of this user or root,
 * nothing for others, no group write, group read only for a group the server is in or root's; every directory and
 * link on its path this user's or root's and not writable by others; the opened descriptor the checked file). So a
 * Kubernetes Secret volume, a systemd credential and a {@code root:tpmphone 0640} file are read; a Docker secret must
 * be given mode 0400 or 0440. A new token is never written through a link. Stateless and thread-safe.
 */
public final class AdminTokenFile {
    /** Tokens shorter than this are refused (a generated one has 43 characters). */
    public static final int MIN_LENGTH = 16;
    private static final int MAX_BYTES = 4096;

    private AdminTokenFile() {
    }

    /**
     * The admin token in {@code file}; with {@code generate}, a new random token is written there first if there is
     * nothing at that name (a new file 0600, a missing directory 0700). Messages name the file and never hold the
     * token.
     *
     * @throws NoSuchFileException if there is no such file and {@code generate} is not set
     * @throws IOException if others could choose or read the file, or it holds no usable token; the message says
     *     what to do
     */
    public static String load(Path file, boolean generate) throws IOException {
        Objects.requireNonNull(file, "file");
        if (generate && !Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
            create(file);
        } else if (generate && Files.isSymbolicLink(file) && !Files.exists(file)) {
            throw new IOException(file + " is a symbolic link to " + Files.readSymbolicLink(file) + ", which does not"
                    + " exist: --generate-admin-token writes a new file only, never through a link. Remove the link,"
                    + " or put the token where it leads");
        }
        byte[] content = OwnerOnlyFiles.readPrivateFile(file, MAX_BYTES);
        try {
            String token = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(content)).toString()
                    .trim();
            if (token.length() < MIN_LENGTH) {
                throw new IOException(file + " holds fewer than " + MIN_LENGTH + " characters: not a usable admin"
                        + " token; delete it and start the server with --generate-admin-token to make one");
            }
            return token;
        } catch (CharacterCodingException e) {
            throw new IOException(file + " is not UTF-8 text: not an admin token file", e);
        } finally {
            Arrays.fill(content, (byte) 0);
        }
    }

    private static void create(Path file) throws IOException {
        byte[] random = new byte[32];
        new SecureRandom().nextBytes(random);
        Path parent = file.toAbsolutePath().getParent();
        if (!Files.isDirectory(parent)) {
            OwnerOnlyFiles.createPrivateDirectories(parent); // only a directory made for it; never the cwd
        }
        byte[] content = (Base64.getUrlEncoder().withoutPadding().encodeToString(random) + "\n")
                .getBytes(StandardCharsets.US_ASCII);
        try {
            OwnerOnlyFiles.writeNew(file, content); // O_CREAT|O_EXCL: never through a link, never over a file
        } catch (FileAlreadyExistsException raced) {
            // Made since the check, by another process or as a dangling link: read what is there, if it passes.
        } finally {
            Arrays.fill(content, (byte) 0);
            Arrays.fill(random, (byte) 0);
        }
    }
}
