package io.tpmphone.swtpm.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;

/**
 * Picks free TCP port pairs (P, P+1) on 127.0.0.1.
 *
 * <p>Consecutive because clients derive the control port from the data port: tpm2-tss's {@code swtpm} TCTI (used by
 * tpm2-tools {@code -T swtpm:host=H,port=P}) connects to P+1 for its control channel, as does TSS.Java's
 * {@code TpmDeviceTcp}. There is a window between releasing the ports here and swtpm binding them; the caller retries
 * with a new pair when swtpm reports "Address already in use".
 */
public final class LoopbackPorts {
    private static final int MAX_TRIES = 100;

    private LoopbackPorts() {
    }

    /** Returns a port P such that P and P+1 were both free a moment ago. */
    public static int pickConsecutivePair() {
        InetAddress loopback = InetAddress.getLoopbackAddress();
        IOException last = null;
        for (int i = 0; i < MAX_TRIES; i++) {
            try (ServerSocket first = new ServerSocket(0, 1, loopback)) {
                int port = first.getLocalPort();
                if (port >= 65535) {
                    continue;
                }
                try (ServerSocket second = new ServerSocket(port + 1, 1, loopback)) {
                    return second.getLocalPort() - 1;
                } catch (IOException taken) {
                    last = taken;
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot bind an ephemeral port on " + loopback, e);
            }
        }
        throw new UncheckedIOException("found no free pair of consecutive ports on " + loopback + " in " + MAX_TRIES
                + " tries", last == null ? new IOException("port 65535") : last);
    }
}
