package io.tpmphone.packaging;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.PostgresServer;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Debian package this build made, on this machine for real (as root, no systemd running): {@code dpkg -i}; the
 * system user, directories, admin token and conffiles it creates; both units checked by {@code systemd-analyze
 * verify}; their {@code ExecStart} lines run as systemd would run them (the server as {@code tpmphone}, serving
 * HTTPS); then {@code dpkg -r} keeps the configuration and state, and {@code dpkg --purge} leaves nothing behind.
 */
@Timeout(300)
class DebianPackageIT {
    private static final Path UNITS = Path.of("/lib/systemd/system");
    private static final Pattern VARIABLE = Pattern.compile("\\$\\{?([A-Za-z_][A-Za-z0-9_]*)}?");

    private record Result(int exit, String output) {
    }

    private static Result exec(List<String> argv) throws Exception {
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), () -> String.join(" ", argv) + " ended within 120 s: " + out);
        return new Result(p.exitValue(), out);
    }

    private static String ok(String... argv) throws Exception {
        Result r = exec(List.of(argv));
        assertEquals(0, r.exit(), () -> String.join(" ", argv) + " failed (" + r.exit() + "): " + r.output());
        return r.output();
    }

    private static Path debianPackage() throws Exception {
        try (var files = Files.list(Path.of("target"))) {
            List<Path> debs = files.filter(f -> f.getFileName().toString().matches("tpmphone_.*_all\\.deb")).toList();
            assertEquals(1, debs.size(), "one package in target/ (built in the package phase): " + debs);
            return debs.get(0).toAbsolutePath();
        }
    }

    private static boolean installed() throws Exception {
        Result r = exec(List.of("dpkg-query", "-W", "-f=${Status}", "tpmphone"));
        return r.exit() == 0 && r.output().contains("installed") && !r.output().contains("not-installed");
    }

    /** The unit's ExecStart as systemd runs it: %H expanded, $VAR from its EnvironmentFile split into words. */
    private static List<String> execStart(String unit, Map<String, String> env) throws Exception {
        String line = Files.readAllLines(UNITS.resolve(unit)).stream().filter(l -> l.startsWith("ExecStart="))
                .findFirst().orElseThrow(() -> new AssertionError(unit + " has no ExecStart"));
        List<String> argv = new ArrayList<>();
        for (String word : line.substring("ExecStart=".length()).trim().split("\\s+")) {
            Matcher m = VARIABLE.matcher(word);
            if (m.matches()) {
                String value = env.get(m.group(1));
                assertTrue(value != null, unit + " uses $" + m.group(1) + ", which its EnvironmentFile defines");
                argv.addAll(List.of(value.trim().split("\\s+")));
            } else {
                argv.add(word.replace("%H", InetAddress.getLocalHost().getHostName()));
            }
        }
        return argv;
    }

    private static Map<String, String> environmentFile(Path file) throws Exception {
        Map<String, String> env = new LinkedHashMap<>();
        for (String l : Files.readAllLines(file)) {
            if (!l.isBlank() && !l.startsWith("#")) {
                int eq = l.indexOf('=');
                env.put(l.substring(0, eq), l.substring(eq + 1));
            }
        }
        return env;
    }

    /** NAME-VERSION.jar as copy-dependencies names it: the version starts at the first '-' followed by a digit. */
    private static final Pattern JAR = Pattern.compile("(.+?)-[0-9][^/]*\\.jar");

    /** Two versions of one artifact on the class path: the order of the jars would decide which classes run. */
    private static void assertEachArtifactOnce(Path lib) throws Exception {
        Map<String, List<String>> byArtifact = new LinkedHashMap<>();
        try (var jars = Files.list(lib)) {
            for (Path jar : jars.sorted().toList()) {
                String name = jar.getFileName().toString();
                Matcher m = JAR.matcher(name);
                assertTrue(m.matches(), "a jar named NAME-VERSION.jar in " + lib + ": " + name);
                byArtifact.computeIfAbsent(m.group(1), k -> new ArrayList<>()).add(name);
            }
        }
        assertTrue(byArtifact.size() > 10, "the distribution's jars are in " + lib + ": " + byArtifact.keySet());
        List<List<String>> twice = byArtifact.values().stream().filter(v -> v.size() > 1).toList();
        assertTrue(twice.isEmpty(), "each artifact once in " + lib + ", saw " + twice);
    }

    private static String owner(Path p) throws Exception {
        PosixFileAttributes a = Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        return a.owner().getName() + ":" + a.group().getName() + " " + PosixFilePermissions.toString(a.permissions());
    }

    @Test
    void dpkgInstall_verifiedUnits_theirCommandLinesRun_andPurgeLeavesNothing() throws Exception {
        assertEquals("root", System.getProperty("user.name"), "dpkg -i needs root (CI and developers run as root)");
        Path deb = debianPackage();
        if (installed()) {
            ok("dpkg", "--purge", "tpmphone"); // left by an interrupted run of this test
        }
        String info = ok("dpkg-deb", "--info", deb.toString());
        assertTrue(info.contains("Package: tpmphone") && info.contains("openjdk-17-jre-headless"), info);
        try {
            ok("dpkg", "-i", deb.toString());
            assertTrue(Files.isExecutable(Path.of("/usr/bin/tpmphone")), "/usr/bin/tpmphone installed");
            assertEachArtifactOnce(Path.of("/usr/share/tpmphone/lib"));
            String user = ok("getent", "passwd", "tpmphone");
            assertTrue(user.trim().endsWith(":/usr/sbin/nologin"), "a system user without a login shell: " + user);
            int uid = Integer.parseInt(user.split(":")[2]);
            assertTrue(uid < 1000, "a system uid: " + user);
            assertEquals("tpmphone:tpmphone rwx------", owner(Path.of("/var/lib/tpmphone-server")));
            assertEquals("root:root rwx------", owner(Path.of("/var/lib/tpmphone-agent")));
            assertEquals("root:tpmphone rw-r-----", owner(Path.of("/etc/tpmphone/admin.token")),
                    "the admin token as the server accepts it (docs/operations.md §3)");
            String conffiles = ok("dpkg-query", "-W", "-f=${Conffiles}", "tpmphone");
            assertTrue(conffiles.contains("/etc/tpmphone/server.env") && conffiles.contains("/etc/tpmphone/agent.env"),
                    "the configuration files are conffiles: " + conffiles);

            Result verify = exec(List.of("systemd-analyze", "verify", UNITS.resolve("tpmphone-server.service")
                    .toString(), UNITS.resolve("tpmphone-agent.service").toString()));
            assertEquals(0, verify.exit(), "systemd-analyze verify: " + verify.output());
            assertFalse(verify.output().contains("tpmphone"), "no warning about our units: " + verify.output());

            // The operator's edit of a conffile: a port nobody uses.
            int port = io.tpmphone.swtpm.testing.FreePorts.tcp();
            Path serverEnv = Path.of("/etc/tpmphone/server.env");
            Files.writeString(serverEnv, Files.readString(serverEnv).replace("127.0.0.1:8443", "127.0.0.1:" + port));
            List<String> server = new ArrayList<>(List.of("runuser", "-u", "tpmphone", "--"));
            server.addAll(execStart("tpmphone-server.service", environmentFile(serverEnv)));
            Process p = new ProcessBuilder(server).redirectErrorStream(true).start();
            try {
                BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8));
                StringBuilder said = new StringBuilder();
                String started = null;
                for (String l = out.readLine(); l != null; l = out.readLine()) {
                    said.append(l).append('\n');
                    if (l.startsWith("attestation server on https://127.0.0.1:" + port)) {
                        started = l;
                        break;
                    }
                }
                assertTrue(started != null, "the server unit's command line starts the server: " + server + "\n"
                        + said);
                Path cert = Path.of("/var/lib/tpmphone-server/keys/tls-cert.pem");
                assertEquals("tpmphone:tpmphone rw-------", owner(cert), "the server wrote its state as tpmphone");
                HttpsURLConnection c = (HttpsURLConnection) new URL("https://127.0.0.1:" + port + "/v1/server")
                        .openConnection();
                c.setSSLSocketFactory(pinned(cert).getSocketFactory());
                c.setConnectTimeout(10_000);
                c.setReadTimeout(30_000);
                assertEquals(200, c.getResponseCode(), "the installed server answers GET /v1/server");
            } finally {
                p.destroy();
                assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the server ends on SIGTERM");
            }

            // The fleet's set-up from the same package: PostgreSQL and the metrics port. Classes a dependency only
            // loads at run time (Flyway's PostgreSQL support through ServiceLoader, the JDBC driver, HikariCP, the
            // Prometheus client's exemplar tracer look-up on the first histogram sample) must be in the package's
            // lib/, which the build's own class paths (tests, benchmarks) do not show.
            try (PostgresServer pg = PostgresServer.start()) {
                String db = pg.createDatabase("deb");
                int metricsPort = io.tpmphone.swtpm.testing.FreePorts.tcp();
                Files.writeString(serverEnv, Files.readString(serverEnv).replace("--listen 127.0.0.1:" + port,
                        "--listen 127.0.0.1:" + port + " --database " + db + " --metrics-port " + metricsPort));
                List<String> onPostgres = new ArrayList<>(List.of("runuser", "-u", "tpmphone", "--"));
                onPostgres.addAll(execStart("tpmphone-server.service", environmentFile(serverEnv)));
                Process q = new ProcessBuilder(onPostgres).redirectErrorStream(true).start();
                try {
                    StringBuilder said = new StringBuilder();
                    Thread reader = new Thread(() -> {
                        try (BufferedReader out = new BufferedReader(new InputStreamReader(q.getInputStream(),
                                StandardCharsets.UTF_8))) {
                            for (String l = out.readLine(); l != null; l = out.readLine()) {
                                synchronized (said) {
                                    said.append(l).append('\n');
                                }
                            }
                        } catch (java.io.IOException e) {
                            // the process ended
                        }
                    }, "installed-server-output");
                    reader.setDaemon(true);
                    reader.start();
                    io.tpmphone.swtpm.testing.Await.until("the installed server on PostgreSQL starts", java.time
                            .Duration.ofSeconds(120), () -> {
                                synchronized (said) {
                                    return said.indexOf("attestation server on https://127.0.0.1:" + port) >= 0
                                            || !q.isAlive();
                                }
                            }, () -> String.valueOf(said));
                    assertTrue(q.isAlive(), "the installed server runs on PostgreSQL: " + onPostgres + "\n" + said);
                    Path cert = Path.of("/var/lib/tpmphone-server/keys/tls-cert.pem");
                    HttpsURLConnection health = (HttpsURLConnection) new URL("https://127.0.0.1:" + port
                            + "/health").openConnection();
                    health.setSSLSocketFactory(pinned(cert).getSocketFactory());
                    health.setConnectTimeout(10_000);
                    health.setReadTimeout(30_000);
                    assertEquals(200, health.getResponseCode(), "GET /health of the installed server on"
                            + " PostgreSQL\n" + said);
                    // An admin call: an audit record, so the audit commit histogram takes its first sample.
                    HttpsURLConnection token = (HttpsURLConnection) new URL("https://127.0.0.1:" + port
                            + "/v1/enrollment-tokens").openConnection();
                    token.setSSLSocketFactory(pinned(cert).getSocketFactory());
                    token.setConnectTimeout(10_000);
                    token.setReadTimeout(30_000);
                    token.setRequestMethod("POST");
                    token.setDoOutput(true);
                    token.setRequestProperty("Content-Type", "application/json");
                    token.setRequestProperty("Authorization", "Bearer " + Files.readString(Path.of(
                            "/etc/tpmphone/admin.token")).trim());
                    try (java.io.OutputStream body = token.getOutputStream()) {
                        body.write("{\"host\":\"deb-host\"}".getBytes(StandardCharsets.UTF_8));
                    }
                    assertEquals(200, token.getResponseCode(), "an enrollment token from the installed server\n"
                            + said);
                    java.net.HttpURLConnection m = (java.net.HttpURLConnection) new URL("http://127.0.0.1:"
                            + metricsPort + "/metrics").openConnection();
                    m.setConnectTimeout(10_000);
                    m.setReadTimeout(30_000);
                    assertEquals(200, m.getResponseCode(), "GET /metrics of the installed server\n" + said);
                    String metrics;
                    try (InputStream in = m.getInputStream()) {
                        metrics = new String(in.readAllBytes(), StandardCharsets.UTF_8);
                    }
                    for (String name : List.of("tpmphone_database_pool_connections{", "tpmphone_audit_unsigned_records ",
                            "tpmphone_audit_commit_duration_seconds_count ")) {
                        assertTrue(metrics.contains(name), "the installed server's metrics have " + name.trim()
                                + ":\n" + metrics);
                    }
                    synchronized (said) {
                        assertFalse(said.toString().contains("ClassNotFoundException")
                                || said.toString().contains("NoClassDefFoundError"), "no class missing at run time:\n"
                                + said);
                    }
                } finally {
                    q.destroy();
                    assertTrue(q.waitFor(60, TimeUnit.SECONDS), "the server on PostgreSQL ends on SIGTERM");
                }
            }

            // The agent's command line as shipped: it runs and stops at the TPM this machine lacks, saying so.
            List<String> agent = execStart("tpmphone-agent.service", environmentFile(Path.of(
                    "/etc/tpmphone/agent.env")));
            Result a = exec(agent);
            assertTrue(a.exit() != 0 && a.output().contains("/dev/tpmrm0"), "the agent unit's command line " + agent
                    + " runs and names the missing TPM device (exit " + a.exit() + "): " + a.output());

            ok("dpkg", "-r", "tpmphone");
            assertFalse(Files.exists(Path.of("/usr/bin/tpmphone")), "removed: the command");
            assertFalse(Files.exists(UNITS.resolve("tpmphone-server.service")), "removed: the units");
            assertFalse(Files.exists(Path.of("/usr/share/tpmphone")), "removed: the distribution");
            assertTrue(Files.readString(serverEnv).contains("127.0.0.1:" + port), "remove keeps the edited conffile");
            assertTrue(Files.exists(Path.of("/var/lib/tpmphone-server/keys")), "remove keeps the server's state");
        } finally {
            if (installed() || exec(List.of("dpkg-query", "-W", "tpmphone")).exit() == 0) {
                ok("dpkg", "--purge", "tpmphone");
            }
        }
        for (String gone : List.of("/etc/tpmphone", "/var/lib/tpmphone-server", "/var/lib/tpmphone-agent",
                "/usr/share/tpmphone", "/usr/bin/tpmphone", "/lib/systemd/system/tpmphone-agent.service")) {
            assertFalse(Files.exists(Path.of(gone), LinkOption.NOFOLLOW_LINKS), "purge leaves nothing: " + gone);
        }
        assertEquals(2, exec(List.of("getent", "passwd", "tpmphone")).exit(), "purge removes the user");
        assertEquals(2, exec(List.of("getent", "group", "tpmphone")).exit(), "purge removes the group");
        assertFalse(installed(), "dpkg no longer knows the package");
    }

    private static SSLContext pinned(Path pem) throws Exception {
        X509Certificate cert;
        try (InputStream in = Files.newInputStream(pem)) {
            cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", cert);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }
}
