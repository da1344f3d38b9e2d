package io.tpmphone.swtpm.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A small private CA for tests, made and used with the real {@code openssl} command (Debian's {@code openssl}; missing
 * is an error, never a skip): an ECDSA P-256 CA certificate valid for two days, and server certificates it issues for
 * given names and IP addresses (subjectAltName, extendedKeyUsage serverAuth). Everything is PEM in the directory given;
 * private keys are PKCS#8 ({@code BEGIN PRIVATE KEY}), created 0600 by openssl. Thread-safe per instance (one openssl
 * at a time).
 */
public final class TestCertificateAuthority {
    private static final long COMMAND_SECONDS = 60;

    private final Path directory;
    private final Path certificate;
    private final Path key;
    private int issued;

    private TestCertificateAuthority(Path directory) {
        this.directory = directory;
        this.certificate = directory.resolve("ca.pem");
        this.key = directory.resolve("ca.key");
    }

    /** A new CA named {@code commonName} in {@code directory} (created if missing). */
    public static TestCertificateAuthority create(Path directory, String commonName)
            throws IOException, InterruptedException {
        TestCertificateAuthority ca = new TestCertificateAuthority(Files.createDirectories(directory));
        ca.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc",
                "-keyout", ca.key.toString(), "-out", ca.certificate.toString(), "-days", "2", "-subj",
                "/CN=" + commonName, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign");
        return ca;
    }

    /** The CA's certificate (PEM): what clients trust. */
    public Path certificate() {
        return certificate;
    }

    /** A certificate and its private key, PEM files. {@code chain} holds the certificate, then the CA's. */
    public record Issued(Path certificate, Path chain, Path key) {
    }

    /**
     * A server certificate for {@code names}: each an IP address (IPv4, or IPv6 with a colon) or a DNS name, all in the
     * subjectAltName; the first is also the common name.
     */
    public synchronized Issued issue(String... names) throws IOException, InterruptedException {
        if (names.length == 0) {
            throw new IllegalArgumentException("a server certificate needs at least one name");
        }
        List<String> san = new ArrayList<>();
        for (String name : names) {
            san.add((name.matches("[0-9.]+") || name.contains(":") ? "IP:" : "DNS:") + name);
        }
        return issue(names[0], "subjectAltName=" + String.join(",", san) + "\n");
    }

    /**
     * A server certificate with {@code commonName} as its subject's CN and no subjectAltName at all: what a client
     * that trusts this CA must refuse for that name (RFC 6125 §6.4.4 leaves the CN to legacy clients only).
     */
    public synchronized Issued issueWithoutSubjectAltName(String commonName) throws IOException,
            InterruptedException {
        return issue(commonName, "");
    }

    private Issued issue(String commonName, String subjectAltName) throws IOException, InterruptedException {
        int n = ++issued;
        Path leafKey = directory.resolve("server-" + n + ".key");
        Path csr = directory.resolve("server-" + n + ".csr");
        Path leaf = directory.resolve("server-" + n + ".pem");
        Path ext = directory.resolve("server-" + n + ".ext");
        Files.writeString(ext, "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                + "extendedKeyUsage=serverAuth\n" + subjectAltName);
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc", "-keyout",
                leafKey.toString(), "-out", csr.toString(), "-subj", "/CN=" + commonName);
        openssl("x509", "-req", "-in", csr.toString(), "-CA", certificate.toString(), "-CAkey", key.toString(),
                "-set_serial", Long.toString(System.nanoTime() & Long.MAX_VALUE), "-days", "2", "-extfile",
                ext.toString(), "-out", leaf.toString());
        Path chain = directory.resolve("server-" + n + "-chain.pem");
        Files.writeString(chain, Files.readString(leaf, StandardCharsets.US_ASCII)
                + Files.readString(certificate, StandardCharsets.US_ASCII));
        return new Issued(leaf, chain, leafKey);
    }

    private void openssl(String... args) throws IOException, InterruptedException {
        List<String> argv = new ArrayList<>();
        argv.add("openssl");
        argv.addAll(List.of(args));
        Path out = Files.createTempFile(directory, "openssl-", ".log");
        Process p;
        try {
            p = new ProcessBuilder(argv).directory(directory.toFile()).redirectErrorStream(true)
                    .redirectOutput(out.toFile()).start();
        } catch (IOException e) {
            throw new IOException("cannot run openssl (apt-get install openssl): " + e.getMessage(), e);
        }
        if (!p.waitFor(COMMAND_SECONDS, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", argv) + " did not finish within " + COMMAND_SECONDS + " s");
        }
        String said = Files.readString(out, StandardCharsets.UTF_8);
        Files.delete(out);
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", argv) + " exited with " + p.exitValue() + ": " + said);
        }
    }
}
