package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.SoundServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A client of the per-call socket (the child, during a call) has anonymous full control of the sound server: it could
 * load a listener of its own that outlived the grant (found by a review), so "no socket into the sound server between
 * calls" did not hold against the child, and the new listener was open to every local user. The grant's end now
 * unloads every such module loaded meanwhile.
 */
class SoundGrantLeftoversIT {
    private static boolean reachable(String server) throws Exception {
        Process p = new ProcessBuilder("pactl", "-s", server, "info").redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(15, TimeUnit.SECONDS));
        return p.exitValue() == 0;
    }

    private static String pactl(String server, String... args) throws Exception {
        java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of("pactl", "-s", server));
        cmd.addAll(java.util.List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(15, TimeUnit.SECONDS));
        return p.exitValue() + ": " + out.strip();
    }

    @Test
    @Timeout(120)
    void aChildDuringACall_cannotKeepTheSoundServerAfterTheGrantEnds(@TempDir Path dir) throws Exception {
        int port = io.tpmphone.swtpm.testing.FreePorts.tcp();
        try (SoundServer server = SoundServer.start(dir.resolve("pulse"))) {
            Path granted = Files.createDirectory(dir.resolve("sound"));
            try (SoundGrant grant = new SoundGrant(server.address(), granted)) {
                grant.accepted("call-1");
                grant.open("call-1");
                String child = "unix:" + granted.resolve(SoundGrant.SOCKET);
                // what the (compromised) child can do through its per-call socket
                String loaded = pactl(child, "load-module", "module-native-protocol-tcp", "port=" + port,
                        "listen=127.0.0.1", "auth-anonymous=1");
                assertTrue(loaded.startsWith("0: "), () -> "the child's load-module through its socket worked: "
                        + loaded);
                assertTrue(reachable("tcp:127.0.0.1:" + port), "while the grant lasts, the child's listener answers");
                grant.close("call-1");
                assertFalse(grant.granted(), "no grant after the last call");
                assertFalse(Files.exists(granted.resolve(SoundGrant.SOCKET)), "the granted socket is gone");
                assertFalse(reachable("tcp:127.0.0.1:" + port), "after the last call nothing the child set up"
                        + " still reaches the sound server (its load-module said: " + loaded + ")");
            }
        }
    }
}
