package io.tpmphone.attestation;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Reads a secret file with {@link OwnerOnlyFiles#readPrivateFile} in a process of its own (in a mount namespace a
 * test made) and prints {@code read N bytes} or {@code refused MESSAGE}: never the content.
 */
public final class SecretFileProbe {
    private SecretFileProbe() {
    }

    public static void main(String[] args) {
        try {
            byte[] content = OwnerOnlyFiles.readPrivateFile(Path.of(args[0]), 4096);
            System.out.println("read " + content.length + " bytes");
        } catch (IOException e) {
            System.out.println("refused " + e.getMessage());
        }
    }
}
