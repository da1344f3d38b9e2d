package io.tpmphone.server;

import java.nio.file.Path;

/**
 * A server in its own JVM (for {@link ServerFileModesIT}): starts on the state directory {@code args[0]}, prints
 * {@code STARTED}, and serves until stdin ends or it is stopped.
 */
public final class ServerStateMain {
    private ServerStateMain() {
    }

    public static void main(String[] args) throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(Path.of(args[0]))
                .adminToken("admin-token-of-the-file-modes-test").start()) {
            System.out.println("STARTED " + server.uri());
            System.out.flush();
            System.in.transferTo(java.io.OutputStream.nullOutputStream());
        }
    }
}
