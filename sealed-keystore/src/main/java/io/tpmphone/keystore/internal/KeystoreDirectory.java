package io.tpmphone.keystore.internal;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * The files of a keystore directory: {@code keystore.properties} (format, mode, PCRs, authority), the sealed blobs
 * {@code root.sealed} and {@code pin.sealed}, and {@code fingerprints.log}. Every file is written to a temporary file
 * created owner-only (0600; the sealed objects and the PIN object are of use to anyone who can reach the TPM), forced
 * to disk and atomically renamed; the metadata is written last, so a keystore either exists whole or not at all.
 * Stateless and thread-safe.
 */
public final class KeystoreDirectory {
    public static final String METADATA = "keystore.properties";
    public static final String ROOT = "root.sealed";
    public static final String PIN = "pin.sealed";
    /** The person's ring-screen phrase, sealed under the root's policy. */
    public static final String PHRASE = "phrase.sealed";
    public static final String FINGERPRINTS = "fingerprints.log";
    public static final String IDENTITY_KEY = "identity-key.public";

    private KeystoreDirectory() {
    }

    /** Replaces {@code file} atomically and durably with an owner-only (0600) file (see {@link OwnerOnlyFiles}). */
    public static void writeAtomically(Path file, byte[] content) throws IOException {
        OwnerOnlyFiles.replace(file, content);
    }

    public static void writeProperties(Path file, Properties p) throws IOException {
        StringWriter w = new StringWriter();
        p.store(w, "tpmphone sealed keystore; do not edit");
        writeAtomically(file, w.toString().getBytes(StandardCharsets.UTF_8));
    }

    public static Properties readProperties(Path file) throws IOException {
        Properties p = new Properties();
        p.load(new StringReader(Files.readString(file, StandardCharsets.UTF_8)));
        return p;
    }
}
