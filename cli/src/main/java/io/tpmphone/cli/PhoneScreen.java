package io.tpmphone.cli;

import io.tpmphone.softphone.control.ControlClient;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * {@code tpmphone phone}'s screen: a relay between the person's terminal and the ring screen that the measured
 * softphone draws ({@link io.tpmphone.softphone.control.RingScreen}). It copies the softphone's frames to the terminal
 * through a {@link TerminalFilter} — what the person sees comes from measured code, never from this process, and only
 * the sequences a screen draws with pass, so the softphone cannot program the terminal — and the person's keys to the
 * softphone. On a terminal: raw mode (keys without Enter, no echo) that keeps signals (Ctrl-C interrupts), in the
 * alternate screen, colours, the window size sent at start and whenever it changes; the terminal's settings are
 * restored on every exit: the end of the screen, an error, and SIGINT, SIGTERM or SIGHUP (a shutdown hook; only
 * SIGKILL leaves the terminal raw, {@code stty sane} repairs it). Piped: plain frames, no escape sequences at all.
 * Ends when the person presses {@code q} or the softphone closes the screen.
 */
final class PhoneScreen {
    private static final Path TTY = Path.of("/dev/tty");
    private final Path control;
    private final boolean terminal;
    private final PrintWriter out;

    PhoneScreen(Path control, boolean terminal, PrintWriter out) {
        this.control = control;
        this.terminal = terminal;
        this.out = out;
    }

    int run() throws IOException, InterruptedException {
        int[] size = terminal ? ttySize() : envSize();
        String saved = terminal ? stty("-g").strip() : null;
        // One lock for everything that touches the terminal (raw mode, frames, restore) and a closing flag: once the
        // terminal is restored (the hook on a signal, or the end), no frame is drawn on it and raw mode is not set.
        Object screenLock = new Object();
        boolean[] closing = {!terminal};
        Runnable restore = () -> {
            synchronized (screenLock) {
                if (closing[0]) {
                    return;
                }
                closing[0] = true;
                out.print("\u001b[0m\u001b[?25h\u001b[?1049l");
                out.flush();
                try {
                    if (saved != null && !saved.isEmpty()) {
                        stty(saved);
                    } else {
                        stty("sane");
                    }
                } catch (IOException e) {
                    System.err.println("tpmphone phone: could not restore the terminal (" + e.getMessage()
                            + "): run stty sane");
                }
            }
        };
        Thread onSignal = new Thread(restore, "phone-terminal-restore");
        TerminalFilter filter = new TerminalFilter(terminal);
        try (ControlClient phone = PhoneCommands.connect(control)) {
            phone.screen(size[1], size[0], terminal);
            if (terminal) {
                Runtime.getRuntime().addShutdownHook(onSignal);
                synchronized (screenLock) {
                    if (closing[0]) {
                        return 130; // a signal came first: the hook restored the terminal, raw mode is not set now
                    }
                    // raw: keys without Enter; isig with no suspend or quit key: only Ctrl-C signals us (Ctrl-Z
                    // would stop us with the terminal raw), and the hook restores the terminal
                    stty("raw", "-echo", "isig", "susp", "undef", "quit", "undef");
                    out.print("\u001b[?1049h\u001b[?25l"); // alternate screen, cursor hidden
                    out.flush();
                }
            }
            OutputStream keys = phone.keys();
            Thread typing = new Thread(() -> forwardKeys(System.in, keys), "phone-keys");
            typing.setDaemon(true);
            typing.start();
            if (terminal) {
                Thread resizing = new Thread(() -> followWindowSize(keys, size), "phone-window-size");
                resizing.setDaemon(true);
                resizing.start();
            }
            Reader frames = phone.frames();
            char[] buf = new char[8192];
            for (int n; (n = frames.read(buf)) != -1; ) {
                String shown = filter.filter(buf, 0, n);
                synchronized (screenLock) {
                    if (closing[0]) {
                        break; // restored (a signal): nothing more is drawn over the person's shell
                    }
                    out.write(shown);
                    out.flush();
                }
            }
            return 0;
        } finally {
            restore.run();
            if (terminal) {
                try {
                    Runtime.getRuntime().removeShutdownHook(onSignal);
                } catch (IllegalStateException shuttingDown) {
                    // the hook runs (or ran) already: restore is once only
                }
            }
        }
    }

    private static void forwardKeys(InputStream in, OutputStream keys) {
        byte[] b = new byte[64];
        try {
            for (int n; (n = in.read(b)) != -1; ) {
                keys.write(b, 0, n);
                keys.flush();
            }
        } catch (IOException e) {
            // the screen ended
        }
    }

    /** Tells the softphone the window's new size whenever it changes (asked twice a second). */
    private void followWindowSize(OutputStream keys, int[] first) {
        int[] last = first.clone();
        try {
            while (true) {
                TimeUnit.MILLISECONDS.sleep(500);
                int[] now = ttySize();
                if (now[0] != last[0] || now[1] != last[1]) {
                    keys.write(("\u001b[8;" + now[0] + ";" + now[1] + "t").getBytes(StandardCharsets.US_ASCII));
                    keys.flush();
                    last = now;
                }
            }
        } catch (IOException | InterruptedException e) {
            // the screen ended
        }
    }

    /** {rows, cols} of the controlling terminal. */
    private static int[] ttySize() throws IOException {
        String[] f = stty("size").strip().split("\\s+");
        try {
            return new int[] {Integer.parseInt(f[0]), Integer.parseInt(f[1])};
        } catch (NumberFormatException | ArrayIndexOutOfBoundsException e) {
            return new int[] {24, 80};
        }
    }

    /** {rows, cols} from LINES and COLUMNS when piped (default 24 x 80). */
    private static int[] envSize() {
        return new int[] {number(System.getenv("LINES"), 24), number(System.getenv("COLUMNS"), 80)};
    }

    private static int number(String s, int otherwise) {
        try {
            return s == null ? otherwise : Math.max(10, Math.min(500, Integer.parseInt(s.trim())));
        } catch (NumberFormatException e) {
            return otherwise;
        }
    }

    /** Runs {@code stty ARGS} on the controlling terminal; returns its output. */
    private static String stty(String... args) throws IOException {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "stty";
        System.arraycopy(args, 0, cmd, 1, args.length);
        Process p = new ProcessBuilder(cmd).redirectInput(new File(TTY.toString()))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        try {
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("stty " + String.join(" ", args) + " did not finish");
            }
            return output;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }
}
