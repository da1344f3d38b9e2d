package io.tpmphone.cli.internal;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;

/**
 * Certificates and secrets in files, as operators keep them. Certificates are read by the JDK's X.509
 * {@link CertificateFactory} (PEM or DER); this class writes no PEM.
 */
public final class Pem {
    private Pem() {
    }

    /**
     * Every certificate in a PEM or DER file.
     *
     * @throws NoSuchFileException if there is no such file (the command line names the option)
     * @throws CertificateException naming the file if it holds no certificate
     */
    public static List<X509Certificate> certificates(Path file) throws IOException, GeneralSecurityException {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(file)) {
            for (java.security.cert.Certificate c : cf.generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
        } catch (CertificateException e) {
            throw new CertificateException(file + " is not a certificate (PEM or DER expected): " + e.getMessage(), e);
        }
        if (out.isEmpty()) {
            throw new CertificateException(file + " holds no certificate (PEM or DER expected)");
        }
        return out;
    }

    /**
     * A secret (admin or enrollment token) from a file; created with 32 random bytes when {@code create} is set. A
     * new file is 0600 from its creation (in a 0700 directory if its directory is new); an existing file with group
     * or other permissions loses them when {@code create} is set (the file is then ours, made on an earlier run).
     *
     * @throws NoSuchFileException if there is no such file and {@code create} is not set (the command line says
     *     which option and how to get one)
     */
    public static String secret(Path file, boolean create) throws IOException {
        if (!Files.exists(file)) {
            if (!create) {
                throw new NoSuchFileException(file.toString());
            }
            byte[] random = new byte[32];
            new SecureRandom().nextBytes(random);
            Path parent = file.toAbsolutePath().getParent();
            if (!Files.isDirectory(parent)) {
                OwnerOnlyFiles.createPrivateDirectories(parent); // only a directory made for it; never the cwd
            }
            byte[] content = (Base64.getUrlEncoder().withoutPadding().encodeToString(random) + "\n")
                    .getBytes(StandardCharsets.US_ASCII);
            try {
                OwnerOnlyFiles.writeNew(file, content);
            } catch (java.nio.file.FileAlreadyExistsException raced) {
                // made by another process since the check: use that one
            } finally {
                Arrays.fill(content, (byte) 0);
            }
        } else if (create) {
            // The file this option made on an earlier start, perhaps by a version that left it readable by others
            // for a moment: nobody else should hold it. (A token file given without it is the operator's to set.)
            OwnerOnlyFiles.restrict(file);
        }
        String token = Files.readString(file, StandardCharsets.UTF_8).trim();
        if (token.length() < 16) {
            throw new IOException(file + " holds fewer than 16 characters: not a usable token");
        }
        return token;
    }
}
