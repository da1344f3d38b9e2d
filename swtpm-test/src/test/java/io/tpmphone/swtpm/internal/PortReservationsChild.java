package io.tpmphone.swtpm.internal;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Another process for {@link PortReservationsTest}: reserves each port named after the lock file, prints
 * {@code PORT true|false} for each and {@code holding}, and holds what it reserved until its standard input ends.
 */
public final class PortReservationsChild {
    private PortReservationsChild() {
    }

    public static void main(String[] args) throws IOException {
        PortReservations r = new PortReservations(Path.of(args[0]));
        StringBuilder out = new StringBuilder("machineWide " + r.machineWide() + "\n");
        for (int i = 1; i < args.length; i++) {
            int port = Integer.parseInt(args[i]);
            out.append(port).append(' ').append(r.reserve(port, 1)).append('\n');
        }
        out.append("holding\n");
        System.out.print(out);
        System.out.flush();
        System.in.transferTo(java.io.OutputStream.nullOutputStream());
    }
}
