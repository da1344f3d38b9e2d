package io.tpmphone.cli.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/** Certificates and secrets in files, as operators keep them. */
public final class Pem {
    private Pem() {
    }

    /** Every certificate in a PEM or DER file. */
    public static List<X509Certificate> certificates(Path file) throws IOException, GeneralSecurityException {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(file)) {
            for (java.security.cert.Certificate c : cf.generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
        }
        if (out.isEmpty()) {
            throw new GeneralSecurityException("no certificate in " + file);
        }
        return out;
    }

    public static String certificatePem(X509Certificate c) throws GeneralSecurityException {
        return "-----BEGIN CERTIFICATE-----\n" + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
                .encodeToString(c.getEncoded()) + "\n-----END CERTIFICATE-----\n";
    }

    /** A secret (admin token) from a file; created with 32 random bytes, owner-only, when {@code create} is set. */
    public static String secret(Path file, boolean create) throws IOException {
        if (!Files.exists(file)) {
            if (!create) {
                throw new IOException("no such file " + file + " (pass --generate-admin-token to create one)");
            }
            byte[] random = new byte[32];
            new SecureRandom().nextBytes(random);
            Files.createDirectories(file.toAbsolutePath().getParent());
            Files.writeString(file, Base64.getUrlEncoder().withoutPadding().encodeToString(random) + "\n");
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        }
        String token = Files.readString(file, StandardCharsets.UTF_8).trim();
        if (token.length() < 16) {
            throw new IOException(file + " holds fewer than 16 characters: not a usable admin token");
        }
        return token;
    }
}
