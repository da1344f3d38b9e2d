package io.tpmphone.swtpm.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;

/**
 * A private {@code swtpm_localca} certificate authority in a directory of its own, so that {@code swtpm_setup}
 * never uses the machine-wide CA under {@code /var/lib/swtpm-localca}.
 *
 * <p>{@code swtpm_localca} creates the CA on its first use: a self-signed root ({@code swtpm-localca-rootca-cert.pem})
 * and an intermediate issuer ({@code issuercert.pem}, key {@code signkey.pem}) that signs the EK and platform
 * certificates. That first use costs roughly 0.7 s more than later ones, which is why one CA is shared per JVM by
 * default. Thread-safe: the first {@code swtpm_setup} run is serialized until the CA exists; later runs are
 * concurrent (swtpm_localca locks its serial number file itself).
 */
public final class LocalCertificateAuthority {
    private static LocalCertificateAuthority shared;

    private final Path directory;
    private final Object creationLock = new Object();

    private LocalCertificateAuthority(Path directory) {
        this.directory = directory;
    }

    /** The CA shared by all instances of this JVM; its directory is deleted when the JVM exits. */
    public static synchronized LocalCertificateAuthority shared() {
        if (shared == null) {
            try {
                Path directory = Files.createTempDirectory("tpmphone-swtpm-localca-");
                shared = inDirectory(directory);
                JvmExitCleanup.register(() -> Directories.deleteRecursively(directory));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot create a directory for the test EK certificate authority", e);
            }
        }
        return shared;
    }

    /** A CA kept in {@code directory} (created if needed), whose owner deletes it. */
    public static LocalCertificateAuthority inDirectory(Path directory) {
        LocalCertificateAuthority ca = new LocalCertificateAuthority(directory.toAbsolutePath());
        try {
            Files.createDirectories(ca.directory);
            Files.writeString(ca.configFile(), String.join("\n",
                    "statedir = " + ca.directory,
                    "signingkey = " + ca.directory.resolve("signkey.pem"),
                    "issuercert = " + ca.issuerCertificate(),
                    "certserial = " + ca.directory.resolve("certserial"),
                    ""), StandardCharsets.UTF_8);
            // Options for swtpm_cert; the platform-* ones are needed only for platform certificates.
            Files.writeString(ca.optionsFile(), String.join("\n",
                    "--platform-manufacturer tpmphone",
                    "--platform-version 2.1",
                    "--platform-model swtpm-test",
                    ""), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the swtpm-localca configuration in " + directory, e);
        }
        return ca;
    }

    /** The CA's directory. */
    public Path directory() {
        return directory;
    }

    /** {@code swtpm-localca.conf}: the file named by {@code create_certs_tool_config}. */
    public Path configFile() {
        return directory.resolve("swtpm-localca.conf");
    }

    /** {@code swtpm-localca.options}: the file named by {@code create_certs_tool_options}. */
    public Path optionsFile() {
        return directory.resolve("swtpm-localca.options");
    }

    /** The issuer (intermediate) certificate, PEM; exists after the first EK certificate was made. */
    public Path issuerCertificate() {
        return directory.resolve("issuercert.pem");
    }

    /** The self-signed root certificate, PEM; exists after the first EK certificate was made. */
    public Path rootCertificate() {
        return directory.resolve("swtpm-localca-rootca-cert.pem");
    }

    /** Runs {@code setup}, serialized with other runs as long as the CA does not exist yet. */
    public <T> T issue(Supplier<T> setup) {
        if (Files.exists(issuerCertificate())) {
            return setup.get();
        }
        synchronized (creationLock) {
            return setup.get();
        }
    }
}
