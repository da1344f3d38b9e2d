package io.tpmphone.rig;

import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real kamailio (Debian's package, with its TLS module) as registrar and proxy, for the demo's proxy step, the
 * {@code bench call --via-proxy} benchmark and the end-to-end tests: its own self-signed certificate and no
 * attestation (an {@code UNATTESTED} hop), digest authentication with one algorithm, users and passwords given by the
 * caller, and a log line with every SDP body it relays ({@code relayed SDP of ...}: what the proxy saw). Started in the
 * foreground in a private directory; {@link #close()} ends it and everything it forked. Not a production proxy
 * configuration: an in-memory location table, no NAT handling, loopback only.
 */
public final class Kamailio implements AutoCloseable {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    private final Process process;
    private final Path dir;
    private final int tlsPort;
    private final int udpPort;
    private final String domain;

    private Kamailio(Process process, Path dir, int tlsPort, int udpPort, String domain) {
        this.process = process;
        this.dir = dir;
        this.tlsPort = tlsPort;
        this.udpPort = udpPort;
        this.domain = domain;
    }

    /** Starts kamailio for {@code domain} with digest {@code algorithm} ("MD5" or "SHA-256") and these users. */
    public static Kamailio start(Path dir, String domain, String algorithm, Map<String, String> passwords)
            throws Exception {
        return start(dir, domain, algorithm, passwords, "", "");
    }

    /**
     * As above, a proxy that also runs {@code onRequest} on every request with an SDP body before relaying it, and
     * {@code onReply} on every reply with one (kamailio script: e.g. {@code subst_body} to rewrite the SDP, as a
     * malicious proxy would). What it logs of the SDP is what it received, before any rewriting.
     */
    public static Kamailio start(Path dir, String domain, String algorithm, Map<String, String> passwords,
                                 String onRequest, String onReply) throws Exception {
        Path binary = Stream.of("/usr/sbin/kamailio", "/usr/local/sbin/kamailio").map(Path::of)
                .filter(Files::isExecutable).findFirst().orElseThrow(() -> new IllegalStateException(
                        "kamailio is not installed: ./tpmphone demo and ./tpmphone test install it (apt-get install"
                                + " -y kamailio kamailio-tls-modules)"));
        Path modules = modulesDirectory();
        Files.createDirectories(dir);
        Path key = dir.resolve("key.pem");
        Path cert = dir.resolve("cert.pem");
        run(dir, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key.toString(), "-out", cert.toString(), "-days", "2", "-subj", "/CN=" + domain,
                "-addext", "subjectAltName=DNS:" + domain + ",IP:127.0.0.1");
        Path tlsCfg = dir.resolve("tls.cfg");
        Files.writeString(tlsCfg, String.join("\n",
                "[server:default]", "method = TLSv1.2+", "verify_certificate = no", "require_certificate = no",
                "private_key = " + key, "certificate = " + cert, "",
                "[client:default]", "method = TLSv1.2+", "verify_certificate = no", "require_certificate = no",
                ""));
        int tlsPort = FreePorts.tcp();
        int udpPort = FreePorts.udp();
        StringBuilder pw = new StringBuilder();
        passwords.forEach((user, password) -> pw.append("    if ($au == \"").append(user)
                .append("\") {\n        $var(pw) = \"").append(password).append("\";\n    }\n"));
        String cfg;
        try (InputStream in = Kamailio.class.getResourceAsStream("/kamailio/kamailio.cfg")) {
            cfg = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        cfg = cfg.replace("@TLS_PORT@", Integer.toString(tlsPort)).replace("@UDP_PORT@", Integer.toString(udpPort))
                .replace("@DOMAIN@", domain).replace("@MODULES@", modules.toString())
                .replace("@TLS_CFG@", tlsCfg.toString()).replace("@ALGORITHM@", algorithm)
                .replace("@PASSWORDS@", pw.toString()).replace("@ON_SDP_REQUEST@", onRequest)
                .replace("@ON_SDP_REPLY@", onReply);
        Path cfgFile = dir.resolve("kamailio.cfg");
        Files.writeString(cfgFile, cfg);
        Path run = Files.createDirectories(dir.resolve("run"));
        Path log = dir.resolve("kamailio.log");
        // -DD: stay in the foreground (its workers stay our descendants); -E: log to stderr; small shared memory.
        Process p = new ProcessBuilder(binary.toString(), "-f", cfgFile.toString(), "-DD", "-E", "-m", "64", "-M",
                "8", "-Y", run.toString(), "-P", run.resolve("kamailio.pid").toString(), "-w", dir.toString())
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        Kamailio k = new Kamailio(p, dir, tlsPort, udpPort, domain);
        // Up when its TLS port accepts a connection; a dead process ends the wait at once.
        try {
            Await.until("kamailio to listen on TLS port " + tlsPort, Duration.ofSeconds(20), () -> {
                if (!p.isAlive()) {
                    throw new AssertionError("kamailio exited with " + p.exitValue() + ":\n" + k.log());
                }
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress(LOOPBACK, tlsPort), 200);
                    return true;
                }
            }, k::log);
        } catch (AssertionError notStarted) {
            k.close();
            throw notStarted;
        }
        return k;
    }

    private static Path modulesDirectory() throws IOException {
        for (String base : List.of("/usr/lib", "/usr/local/lib", "/usr/lib64")) {
            Path b = Path.of(base);
            if (!Files.isDirectory(b)) {
                continue;
            }
            try (Stream<Path> s = Files.find(b, 4, (p, a) -> p.getFileName().toString().equals("tls.so")
                    && p.getParent().endsWith(Path.of("kamailio", "modules")))) {
                var found = s.findFirst();
                if (found.isPresent()) {
                    return found.get().getParent();
                }
            }
        }
        throw new IllegalStateException("kamailio's TLS module (tls.so) is not installed: ./tpmphone demo and"
                + " ./tpmphone test install it (apt-get install -y kamailio-tls-modules)");
    }

    private static void run(Path dir, String... command) throws Exception {
        Process p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " failed:\n" + out);
        }
    }

    /** Where the phones reach it (TLS). */
    public InetSocketAddress tls() {
        return new InetSocketAddress(LOOPBACK, tlsPort);
    }

    /** Its UDP listener (nothing of the demo's calls may cross it, in clear or at all). */
    public InetSocketAddress udp() {
        return new InetSocketAddress(LOOPBACK, udpPort);
    }

    public String domain() {
        return domain;
    }

    /** Everything kamailio logged so far (for assertion messages). */
    public String log() {
        try {
            return Files.readString(dir.resolve("kamailio.log"), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** The last {@code lines} lines kamailio logged (for assertion messages that need only the recent ones). */
    public String logTail(int lines) {
        List<String> all = log().lines().toList();
        return "kamailio log (" + dir.resolve("kamailio.log") + ", last " + Math.min(lines, all.size()) + " of "
                + all.size() + " lines):\n" + String.join("\n", all.subList(Math.max(0, all.size() - lines),
                all.size()));
    }

    /** Ends kamailio and every worker it forked (an interrupt stops the waiting, not the killing, and is kept). */
    @Override
    public void close() {
        List<ProcessHandle> children = process.descendants().toList();
        process.destroy();
        try {
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        for (ProcessHandle c : children) {
            c.destroyForcibly();
        }
        if (Thread.currentThread().isInterrupted()) {
            return;
        }
        // Each worker's exit is an event (ProcessHandle.onExit); wait for all of them, at most 5 s.
        try {
            CompletableFuture.allOf(children.stream().map(ProcessHandle::onExit).toArray(CompletableFuture[]::new))
                    .get(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            // best effort: a worker that outlives SIGKILL is the kernel's to reap
        }
    }
}
