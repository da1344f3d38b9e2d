package io.tpmphone.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The kernel's view of TCP connections on this host (Linux {@code /proc/net/tcp} and {@code tcp6}): lets a test wait
 * for a connection's end to be closed by the process holding it, an event no API of that process reports.
 */
final class TcpConnections {
    private static final String ESTABLISHED = "01";
    private static final String CLOSE_WAIT = "08";

    private TcpConnections() {
    }

    /**
     * The connections to remote port {@code port} whose local end is still open (ESTABLISHED, or CLOSE_WAIT: the peer
     * closed, the local process has not yet), as the kernel lists them.
     */
    static List<String> toPort(int port) throws IOException {
        String hexPort = String.format(Locale.ROOT, "%04X", port);
        List<String> open = new ArrayList<>();
        for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            Path file = Path.of(table);
            if (!Files.isReadable(file)) {
                continue;
            }
            for (String line : Files.readAllLines(file)) {
                String[] f = line.trim().split("\\s+");
                if (f.length > 3 && f[2].endsWith(":" + hexPort) && (f[3].equals(ESTABLISHED) || f[3].equals(CLOSE_WAIT))) {
                    open.add(table + ": " + line.trim());
                }
            }
        }
        return open;
    }
}
