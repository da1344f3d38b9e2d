package io.tpmphone.swtpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

class SwtpmProcessIT {
    private static final Logger LOG = LoggerFactory.getLogger(SwtpmProcessIT.class);
    private static final String ZERO_SHA256 = "0".repeat(64);

    @Test
    void start_dataSocketAnswersRawGetRandom_andTpm2ToolsReachIt() throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().start()) {
            assertTrue(tpm.isAlive(), () -> "swtpm runs after start(): " + Seen.swtpm(tpm));
            assertFalse(tpm.isInsecureTcp(), () -> "the default swtpm is on Unix sockets: " + Seen.swtpm(tpm));
            assertEquals("swtpm:socket=" + tpm.serverSocket(), tpm.tpmUri());
            assertEquals("cmd:socat - UNIX-CONNECT:" + tpm.serverSocket(), tpm.tctiString());
            assertEquals(tpm.serverSocket().getParent(), tpm.controlSocket().getParent(), "sockets side by side");
            IllegalStateException noPort = assertThrows(IllegalStateException.class, tpm::port);
            assertTrue(noPort.getMessage().contains("Unix sockets"), noPort.getMessage());

            byte[] response = RawTpm.exchange(tpm.serverSocket(), RawTpm.getRandomCommand(16));

            ByteBuffer buffer = ByteBuffer.wrap(response);
            assertEquals(RawTpm.TPM_ST_NO_SESSIONS, buffer.getShort(), "tag");
            assertEquals(10 + 2 + 16, buffer.getInt(), "responseSize");
            assertEquals(0, buffer.getInt(), "TPM_RC_SUCCESS");
            assertEquals(16, buffer.getShort(), "randomBytes.size");
            String random = Tpm2Tools.run(tpm, "tpm2_getrandom", "--hex", "8").requireSuccess().stdout();
            assertTrue(random.matches("[0-9a-f]{16}\\s*"), "tpm2_getrandom through socat: " + random);
        }
    }

    /**
     * tpm2-tools through {@link SwtpmProcess#tctiString()} to a swtpm whose socket directory has socat's and the
     * shell's syntax in its name (swtpm itself takes any path without ',' or white space). The TCTI used to carry the
     * path as it was: socat split it at ':' and {@code !!}, and {@code sh} ran what followed a ';'.
     */
    @Test
    @org.junit.jupiter.api.Timeout(120)
    void tpm2Tools_reachASwtpmWhoseSocketPathHasShellAndSocatSyntax(@TempDir Path dir) throws Exception {
        Path sockets = dir.resolve("a:b!!c'd\"e(f)[g]{h}\\i;touch${IFS}pwned;$(touch${IFS}pwned2)");
        try (SwtpmProcess tpm = SwtpmProcess.builder().socketDirectory(sockets).start()) {
            String tcti = tpm.tctiString();
            // tpm2-tss runs the command TCTI with sh -c in the tool's working directory: run the tool in dir.
            Process p = new ProcessBuilder("tpm2_getrandom", "-T", tcti, "--hex", "8").directory(dir.toFile())
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS), () -> "tpm2_getrandom ended: " + out);
            assertTrue(p.exitValue() == 0 && out.matches("[0-9a-f]{16}\\s*"), () -> "tpm2_getrandom -T " + tcti
                    + " reached the swtpm at " + tpm.serverSocket() + ": exit code " + p.exitValue() + ", output "
                    + out);
            try (java.util.stream.Stream<Path> files = Files.list(dir)) {
                List<String> names = files.map(f -> f.getFileName().toString()).toList();
                assertEquals(List.of(sockets.getFileName().toString()), names, () -> "nothing in the tool's"
                        + " working directory but the socket directory: no command of the path ran; TCTI " + tcti);
            }
        }
    }

    @Test
    void insecureTcp_dataPortAnswersRawGetRandom() throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().insecureTcp(true).start()) {
            assertTrue(tpm.isAlive(), () -> "the insecure-TCP swtpm runs: " + Seen.swtpm(tpm));
            assertEquals("127.0.0.1", tpm.host());
            assertEquals("swtpm:host=127.0.0.1,port=" + tpm.port(), tpm.tctiString());
            assertEquals(tpm.tctiString(), tpm.tpmUri());

            byte[] response = RawTpm.exchange(tpm.host(), tpm.port(), RawTpm.getRandomCommand(16));

            ByteBuffer buffer = ByteBuffer.wrap(response);
            String hex = HexFormat.of().formatHex(response);
            assertEquals(RawTpm.TPM_ST_NO_SESSIONS, buffer.getShort(), () -> "tag; response " + hex);
            assertEquals(10 + 2 + 16, buffer.getInt(), () -> "responseSize; response " + hex);
            assertEquals(0, buffer.getInt(), () -> "TPM_RC_SUCCESS; response " + hex + "; " + Seen.swtpm(tpm));
            assertEquals(16, buffer.getShort(), () -> "randomBytes.size; response " + hex);
        }
    }

    @Test
    void restart_keepsNvIndexAndPersistentObject_andResetsPcrs(@TempDir Path work) throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().start()) {
            Path data = Files.write(work.resolve("data.bin"), new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
            Tpm2Tools.run(tpm, "tpm2_nvdefine", "0x01500100", "-C", "o", "-s", "8",
                    "-a", "ownerread|ownerwrite|no_da").requireSuccess();
            Tpm2Tools.run(tpm, "tpm2_nvwrite", "0x01500100", "-C", "o", "-i", data.toString()).requireSuccess();
            Path primary = work.resolve("primary.ctx");
            Tpm2Tools.run(tpm, "tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", primary.toString())
                    .requireSuccess();
            Tpm2Tools.run(tpm, "tpm2_evictcontrol", "-C", "o", "-c", primary.toString(), "0x81000100")
                    .requireSuccess();
            Tpm2Tools.run(tpm, "tpm2_pcrextend", "10:sha256=" + "ab".repeat(32)).requireSuccess();
            assertNotEquals(ZERO_SHA256, pcr10Sha256(tpm));
            long oldPid = tpm.pid();

            tpm.restart();

            assertTrue(tpm.isAlive(), () -> "swtpm runs after restart(): " + Seen.swtpm(tpm));
            assertNotEquals(oldPid, tpm.pid(), () -> "restart() started a new process: " + Seen.swtpm(tpm));
            assertFalse(ProcessHandle.of(oldPid).map(ProcessHandle::isAlive).orElse(false),
                () -> "old process gone: " + Seen.process(oldPid));
            assertEquals(ZERO_SHA256, pcr10Sha256(tpm), "PCR 10 is reset by the reboot");
            Path read = work.resolve("read.bin");
            Tpm2Tools.run(tpm, "tpm2_nvread", "0x01500100", "-C", "o", "-o", read.toString()).requireSuccess();
            assertArrayEquals(Files.readAllBytes(data), Files.readAllBytes(read), "NV index content kept");
            String persistent = Tpm2Tools.run(tpm, "tpm2_getcap", "handles-persistent").requireSuccess().stdout();
            assertTrue(persistent.contains("0x81000100"), "persistent object kept: " + persistent);
        }
    }

    @Test
    void orderlyRestart_keepsLockoutCounter_whileKillCountsAnAuthFailure(@TempDir Path work) throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().start()) {
            Path data = Files.write(work.resolve("data.bin"), new byte[] {9, 9, 9, 9});
            // An index with its own password and dictionary-attack protection (no no_da attribute).
            Tpm2Tools.run(tpm, "tpm2_nvdefine", "0x01500101", "-C", "o", "-s", "4", "-p", "pin",
                    "-a", "authread|authwrite").requireSuccess();
            Tpm2Tools.run(tpm, "tpm2_nvwrite", "0x01500101", "-P", "pin", "-i", data.toString()).requireSuccess();

            tpm.restart();
            assertEquals(0, lockoutCounter(tpm), "an orderly restart is not an attack");

            Tpm2Tools.run(tpm, "tpm2_nvwrite", "0x01500101", "-P", "pin", "-i", data.toString()).requireSuccess();
            tpm.kill();
            tpm.restart();
            assertEquals(1, lockoutCounter(tpm), "power loss after a DA-protected use counts as a failure");
        }
    }

    @Test
    void kill_leavesNoProcess_andCloseStillDeletesTheState() {
        SwtpmProcess tpm = SwtpmProcess.builder().start();
        try {
            long pid = tpm.pid();
            Path state = tpm.stateDirectory();

            tpm.kill();

            assertFalse(tpm.isAlive(), () -> "kill() leaves no running swtpm: " + Seen.swtpm(tpm));
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false),
                () -> "pid " + pid + " gone: " + Seen.process(pid));
            assertThrows(IOException.class, () -> RawTpm.exchange(tpm, RawTpm.getRandomCommand(8)),
                    () -> "nothing answers on the killed swtpm");
            tpm.close();
            assertFalse(Files.exists(state), () -> state + " deleted by close(); it holds " + list(state));
        } finally {
            tpm.close();
        }
    }

    @Test
    void killMidCommand_dropsTheClientConnection_andRestartRecovers() throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().insecureTcp(true).start()) {
            try (Socket client = new Socket()) {
                client.connect(new InetSocketAddress(tpm.host(), tpm.port()), 5_000);
                client.setSoTimeout(5_000);
                byte[] command = RawTpm.getRandomCommand(8);
                client.getOutputStream().write(command, 0, 6); // half a command: swtpm waits for the rest

                tpm.kill();

                InputStream in = client.getInputStream();
                assertEquals(-1, readOrEndOfStream(in),
                        () -> "connection closed by the dying swtpm: " + Seen.swtpm(tpm));
            }
            tpm.restart();
            byte[] response = RawTpm.exchange(tpm.host(), tpm.port(), RawTpm.getRandomCommand(8));
            assertEquals(0, RawTpm.responseCode(response), () -> "TPM_RC_SUCCESS; response "
                    + HexFormat.of().formatHex(response) + "; " + Seen.swtpm(tpm));
        }
    }

    @Test
    void stop_whileAClientHoldsTheDataPort_stillEndsTheProcess() throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().insecureTcp(true).start();
             Socket client = new Socket()) {
            client.connect(new InetSocketAddress(tpm.host(), tpm.port()), 5_000);
            client.setSoTimeout(5_000);
            client.getOutputStream().write(RawTpm.getRandomCommand(4));
            client.getInputStream().readNBytes(10 + 2 + 4); // swtpm now serves this client until it disconnects
            long pid = tpm.pid();

            tpm.stop(); // TPM2_Shutdown cannot get through (1 s timeout), SIGTERM still works

            assertFalse(tpm.isAlive(), () -> "stop() ended swtpm despite the busy client: " + Seen.swtpm(tpm));
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), () -> Seen.process(pid));
        }
    }

    @Test
    void restart_whenTheOldPortWasTakenMeanwhile_movesToFreePorts() throws IOException {
        try (SwtpmProcess tpm = SwtpmProcess.builder().insecureTcp(true).start()) {
            int oldPort = tpm.port();
            tpm.kill();
            try (ServerSocket squatter = new ServerSocket(oldPort, 1, InetAddress.getLoopbackAddress())) {
                tpm.restart();

                assertNotEquals(squatter.getLocalPort(), tpm.port(),
                        () -> "moved off the taken port: " + Seen.swtpm(tpm));
                assertEquals(tpm.port() + 1, tpm.controlPort(), () -> "control port is data port + 1: " + tpm);
                byte[] response = RawTpm.exchange(tpm.host(), tpm.port(), RawTpm.getRandomCommand(4));
                assertEquals(0, RawTpm.responseCode(response), () -> "TPM_RC_SUCCESS on the new port; response "
                        + HexFormat.of().formatHex(response) + "; " + Seen.swtpm(tpm));
            }
        }
    }

    @Test
    void close_stopsAndDeletesThePrivateStateDirectory() {
        SwtpmProcess tpm = SwtpmProcess.builder().start();
        Path state = tpm.stateDirectory();
        long pid = tpm.pid();
        try {
            assertTrue(Files.isDirectory(state), () -> "the private state directory exists: " + Seen.swtpm(tpm));
        } finally {
            tpm.close();
        }
        tpm.close(); // idempotent

        assertFalse(Files.exists(state), () -> state + " deleted by close(); it holds " + list(state));
        assertFalse(Files.exists(tpm.logFile()), () -> "the log is deleted by close(): " + Seen.logTail(tpm.logFile()));
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), () -> Seen.process(pid));
        assertThrows(IllegalStateException.class, tpm::restart, "restart() after close() is an error");
    }

    @Test
    void givenStateDirectory_isKeptOnClose_andCarriesTheTpmToTheNextInstance(@TempDir Path work) {
        Path state = work.resolve("tpm-state");
        try (SwtpmProcess tpm = SwtpmProcess.builder().stateDirectory(state).start()) {
            Tpm2Tools.run(tpm, "tpm2_nvdefine", "0x01500102", "-C", "o", "-s", "4", "-a", "ownerread|ownerwrite")
                    .requireSuccess();
        }
        assertTrue(Files.isRegularFile(state.resolve("tpm2-00.permall")),
                () -> "the given state directory is kept on close(); it holds " + list(state));
        assertTrue(Files.isRegularFile(work.resolve("tpm-state.key")), "the state key is kept beside the state");
        try (SwtpmProcess again = SwtpmProcess.builder().stateDirectory(state).start()) {
            String indices = Tpm2Tools.run(again, "tpm2_getcap", "handles-nv-index").requireSuccess().stdout();
            assertTrue(indices.contains("0x1500102"), "NV index 0x1500102 carried to the next instance: " + indices);
        }
    }

    @Test
    void ekCertificates_areInNv_andChainToTheExposedCa(@TempDir Path work) throws Exception {
        try (SwtpmProcess tpm = SwtpmProcess.builder().withEkCertificate(true).start()) {
            assertTrue(tpm.hasEkCertificates(),
                    () -> "withEkCertificate(true) gave EK certificates: " + Seen.swtpm(tpm));
            X509Certificate rsaEk = readNvCertificate(tpm, SwtpmProcess.EK_CERTIFICATE_RSA_2048_NV_INDEX, work);
            X509Certificate eccEk = readNvCertificate(tpm, SwtpmProcess.EK_CERTIFICATE_ECC_P384_NV_INDEX, work);

            RSAPublicKey rsaKey = (RSAPublicKey) rsaEk.getPublicKey();
            assertEquals(2048, rsaKey.getModulus().bitLength(), () -> "RSA EK size; certificate " + rsaEk);
            ECPublicKey eccKey = (ECPublicKey) eccEk.getPublicKey();
            assertEquals(384, eccKey.getParams().getCurve().getField().getFieldSize(),
                    () -> "ECC EK curve size; certificate " + eccEk);

            X509Certificate issuer = readPem(tpm.caCertificate());
            X509Certificate root = readPem(tpm.rootCertificate());
            validate(rsaEk, issuer, root);
            validate(eccEk, issuer, root);

            // The certificate is for the EK swtpm_setup left persistent at 0x81010001.
            Path ekPublic = work.resolve("ek.der");
            Tpm2Tools.run(tpm, "tpm2_readpublic", "-c", "0x81010001", "-f", "der", "-o", ekPublic.toString())
                    .requireSuccess();
            PublicKey persistentEk = KeyFactory.getInstance("RSA")
                    .generatePublic(new X509EncodedKeySpec(Files.readAllBytes(ekPublic)));
            assertEquals(rsaKey, persistentEk, "the RSA EK certificate is for the persistent EK at 0x81010001");

            String banks = Tpm2Tools.run(tpm, "tpm2_getcap", "pcrs").requireSuccess().stdout();
            assertTrue(banks.contains("sha1: [ 0,") && banks.contains("sha256: [ 0,"), "all banks active: " + banks);
        }
    }

    @Test
    void platformCertificate_isInNv_andImpliesEkCertificates() {
        try (SwtpmProcess tpm = SwtpmProcess.builder().withPlatformCertificate(true).start()) {
            String indices = Tpm2Tools.run(tpm, "tpm2_getcap", "handles-nv-index").requireSuccess().stdout();
            assertTrue(indices.contains("0x1C08000") || indices.contains("0x1c08000"),
                    "platform certificate index 0x1C08000 defined: " + indices);
            assertTrue(indices.contains("0x1C00002") || indices.contains("0x1c00002"), "implies EK: " + indices);
        }
    }

    @Test
    void privateCertificateAuthority_issuesCertificatesTheSharedCaDoesNotVerify(@TempDir Path work)
            throws Exception {
        try (SwtpmProcess shared = SwtpmProcess.builder().withEkCertificate(true).start();
             SwtpmProcess own = SwtpmProcess.builder().withEkCertificate(true).privateCertificateAuthority(true)
                     .start()) {
            X509Certificate ownEk = readNvCertificate(own, SwtpmProcess.EK_CERTIFICATE_RSA_2048_NV_INDEX, work);
            validate(ownEk, readPem(own.caCertificate()), readPem(own.rootCertificate()));
            assertThrows(CertPathValidatorException.class,
                    () -> validate(ownEk, readPem(shared.caCertificate()), readPem(shared.rootCertificate())),
                    () -> "the shared CA does not verify the private CA's EK certificate, issued by "
                            + ownEk.getIssuerX500Principal());
            Path ownCa = own.caCertificate();
            own.close();
            assertFalse(Files.exists(ownCa), () -> "a private CA is deleted with its instance: " + ownCa + " exists");
            assertTrue(Files.exists(shared.caCertificate()),
                    () -> "the shared CA lives until JVM exit: " + shared.caCertificate() + " is gone");
        }
    }

    @Test
    void withoutEkCertificate_caCertificateIsAnError() {
        try (SwtpmProcess tpm = SwtpmProcess.builder().start()) {
            assertFalse(tpm.hasEkCertificates(), () -> "no EK certificates by default: " + Seen.swtpm(tpm));
            IllegalStateException e = assertThrows(IllegalStateException.class, tpm::caCertificate);
            assertTrue(e.getMessage().contains("withEkCertificate(true)"), e.getMessage());
        }
    }

    @Test
    void twoInstances_runAtOnceOnDifferentSockets() throws IOException {
        try (SwtpmProcess first = SwtpmProcess.builder().start();
             SwtpmProcess second = SwtpmProcess.builder().start()) {
            assertNotEquals(first.serverSocket(), second.serverSocket());
            assertNotEquals(first.stateDirectory(), second.stateDirectory());
            assertNotEquals(first.stateKeyFile(), second.stateKeyFile());
            assertEquals(0, RawTpm.responseCode(RawTpm.exchange(first, RawTpm.getRandomCommand(4))));
            assertEquals(0, RawTpm.responseCode(RawTpm.exchange(second, RawTpm.getRandomCommand(4))));
        }
    }

    @Test
    void twoInsecureTcpInstances_runAtOnceOnDifferentPorts() throws IOException {
        try (SwtpmProcess first = SwtpmProcess.builder().insecureTcp(true).start();
             SwtpmProcess second = SwtpmProcess.builder().insecureTcp(true).start()) {
            Set<Integer> ports = new HashSet<>(List.of(first.port(), first.controlPort(), second.port(),
                    second.controlPort()));
            assertEquals(4, ports.size(), "four distinct ports: " + ports);
            assertNotEquals(first.stateDirectory(), second.stateDirectory(), "each instance has its own state");
            byte[] fromFirst = RawTpm.exchange(first.host(), first.port(), RawTpm.getRandomCommand(4));
            assertEquals(0, RawTpm.responseCode(fromFirst), () -> "first instance: TPM_RC_SUCCESS; response "
                    + HexFormat.of().formatHex(fromFirst) + "; " + Seen.swtpm(first));
            byte[] fromSecond = RawTpm.exchange(second.host(), second.port(), RawTpm.getRandomCommand(4));
            assertEquals(0, RawTpm.responseCode(fromSecond), () -> "second instance: TPM_RC_SUCCESS; response "
                    + HexFormat.of().formatHex(fromSecond) + "; " + Seen.swtpm(second));
        }
    }

    @Test
    void missingSwtpm_failsWithTheInstallHint() {
        SwtpmNotInstalledException e = assertThrows(SwtpmNotInstalledException.class,
                () -> SwtpmProcess.builder().swtpmExecutable(Path.of("/nonexistent/swtpm")).start());
        assertTrue(e.getMessage().startsWith("swtpm is not installed: run `./tpmphone test` (installs it when root) "
                + "or `apt-get install -y swtpm swtpm-tools tpm2-tools`"), e.getMessage());
        assertTrue(e.getMessage().contains("/nonexistent/swtpm"), e.getMessage());
    }

    @Test
    void startTimes_areMeasured() {
        List<Long> plain = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            long started = System.nanoTime();
            try (SwtpmProcess tpm = SwtpmProcess.builder().start()) {
                plain.add((System.nanoTime() - started) / 1_000_000);
                assertTrue(tpm.isAlive(), () -> "swtpm runs after start(): " + Seen.swtpm(tpm));
            }
        }
        List<Long> restarts = new ArrayList<>();
        List<Long> withEk = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            long started = System.nanoTime();
            try (SwtpmProcess tpm = SwtpmProcess.builder().withEkCertificate(true).start()) {
                withEk.add((System.nanoTime() - started) / 1_000_000);
                long restarted = System.nanoTime();
                tpm.restart();
                restarts.add((System.nanoTime() - restarted) / 1_000_000);
            }
        }
        long started = System.nanoTime();
        try (SwtpmProcess tpm = SwtpmProcess.builder().withEkCertificate(true).privateCertificateAuthority(true)
                .start()) {
            LOG.info("start with EK certificates and a new CA: {} ms", (System.nanoTime() - started) / 1_000_000);
        }
        LOG.info("start without EK certificates: {} ms; with EK certificates (CA exists): {} ms; restart: {} ms",
                plain, withEk, restarts);
        assertTrue(plain.stream().sorted().toList().get(plain.size() / 2) < 1_000, "median start < 1 s: " + plain);
    }

    // ---------------------------------------------------------------------------------------------------------------

    /** The files under a directory, for a message saying it should be gone. */
    private static String list(Path dir) {
        if (!Files.exists(dir)) {
            return "nothing (it is gone)";
        }
        try (var files = Files.walk(dir)) {
            return files.map(Path::toString).toList().toString();
        } catch (IOException | RuntimeException e) {
            return "(cannot list: " + e + ")";
        }
    }

    private static String pcr10Sha256(SwtpmProcess tpm) {
        String out = Tpm2Tools.run(tpm, "tpm2_pcrread", "sha256:10").requireSuccess().stdout();
        Matcher matcher = Pattern.compile("10\\s*:\\s*0x([0-9A-Fa-f]+)").matcher(out);
        assertTrue(matcher.find(), () -> "tpm2_pcrread sha256:10 prints PCR 10; it printed: " + out);
        return matcher.group(1).toLowerCase();
    }

    private static int lockoutCounter(SwtpmProcess tpm) {
        String out = Tpm2Tools.run(tpm, "tpm2_getcap", "properties-variable").requireSuccess().stdout();
        Matcher matcher = Pattern.compile("TPM2_PT_LOCKOUT_COUNTER:\\s*0x([0-9A-Fa-f]+)").matcher(out);
        assertTrue(matcher.find(),
                () -> "tpm2_getcap properties-variable prints the lockout counter; it printed: " + out);
        return Integer.parseInt(matcher.group(1), 16);
    }

    private static X509Certificate readNvCertificate(SwtpmProcess tpm, int index, Path work) throws Exception {
        Path der = work.resolve(Integer.toHexString(index) + "-" + tpm.pid() + ".der");
        Tpm2Tools.run(tpm, "tpm2_nvread", "0x" + Integer.toHexString(index), "-o", der.toString()).requireSuccess();
        try (InputStream in = Files.newInputStream(der)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static X509Certificate readPem(Path pem) throws Exception {
        try (InputStream in = Files.newInputStream(pem)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static void validate(X509Certificate ek, X509Certificate issuer, X509Certificate root) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        PKIXParameters parameters = new PKIXParameters(Set.of(new TrustAnchor(root, null)));
        parameters.setRevocationEnabled(false);
        CertPathValidator.getInstance("PKIX").validate(factory.generateCertPath(List.of(ek, issuer)), parameters);
    }

    private static int readOrEndOfStream(InputStream in) {
        try {
            return in.read();
        } catch (IOException connectionReset) {
            return -1;
        }
    }
}
