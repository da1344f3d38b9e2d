package io.tpmphone.swtpm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link SwtpmProcess#commandTcti}: the TCTI string passes through {@code /bin/sh} (tpm2-tss's command TCTI runs it
 * with {@code sh -c}) and then socat's address parser. The path used to go in as it was, so a ',' added socat options,
 * ':' or {@code !!} broke the address, and a quote or ';' in a directory name ran commands in the user's shell. Each
 * case here runs the real {@code sh} and {@code socat} against a socket this test listens on.
 */
class CommandTctiTest {

    @Test
    @Timeout(10)
    void aPlainPath_staysAsItWas() {
        assertEquals("cmd:socat - UNIX-CONNECT:/run/user/1000/tpmphone/swtpm/ci/run/server.sock",
                SwtpmProcess.commandTcti(Path.of("/run/user/1000/tpmphone/swtpm/ci/run/server.sock")));
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "a,b:c!!d,fork",                                   // socat: option, parameter, second address
        "o'brien \"q\" (x) [y] {z} \\w",                   // quotes, brackets, space, backslash
        "x;touch pwned;$(touch pwned2)`touch pwned3`&|",   // shell commands
        "~home #x *?<>="                                    // globs, redirections, a comment, a tilde
    })
    @Timeout(30)
    void aPathWithShellOrSocatSyntax_reachesTheSocket_andRunsNothing(String name, @TempDir Path dir)
            throws Exception {
        Path socket = Files.createDirectory(dir.resolve(name)).resolve("s.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            CompletableFuture<String> served = CompletableFuture.supplyAsync(() -> echoOnce(server));
            String tcti = SwtpmProcess.commandTcti(socket);
            assertTrue(tcti.startsWith("cmd:"), tcti);
            // What tpm2-tss's command TCTI does with the rest: execlp("/bin/sh", "sh", "-c", conf).
            Process p = new ProcessBuilder("/bin/sh", "-c", tcti.substring("cmd:".length())).directory(dir.toFile())
                    .redirectErrorStream(true).start();
            p.getOutputStream().write("ping\n".getBytes(StandardCharsets.US_ASCII));
            p.getOutputStream().close();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(10, TimeUnit.SECONDS), () -> "sh -c '" + tcti + "' ended; it printed " + out);
            assertEquals("echo:ping\n", out, () -> "the TCTI " + tcti + " reached " + socket + "; exit code "
                    + p.exitValue());
            assertEquals("ping\n", served.get(10, TimeUnit.SECONDS), "what the socket received");
        }
        try (Stream<Path> files = Files.list(dir)) {
            List<String> names = files.map(f -> f.getFileName().toString()).toList();
            assertEquals(List.of(name), names, "nothing but the socket's directory in the working directory: no"
                    + " command of the path ran");
        }
    }

    /** Accepts one connection, reads a line, answers "echo:" and the line; returns the line. */
    private static String echoOnce(ServerSocketChannel server) {
        try (SocketChannel c = server.accept()) {
            ByteBuffer in = ByteBuffer.allocate(64);
            while (in.position() == 0 || in.get(in.position() - 1) != '\n') {
                if (c.read(in) < 0) {
                    break;
                }
            }
            String line = new String(in.array(), 0, in.position(), StandardCharsets.US_ASCII);
            c.write(ByteBuffer.wrap(("echo:" + line).getBytes(StandardCharsets.US_ASCII)));
            return line;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
