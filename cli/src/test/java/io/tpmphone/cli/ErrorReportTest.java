package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.agent.AttestationClientException;
import io.tpmphone.swtpm.SwtpmNotInstalledException;
import io.tpmphone.tpm.TpmTransportException;
import java.io.IOException;
import java.net.BindException;
import java.net.ConnectException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.util.List;
import java.util.Map;
import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The last line of an error: what to do next, for the failures the commands really meet. */
class ErrorReportTest {

    /** The command {@code args} select, with their values parsed. */
    private static CommandLine parsed(String... args) {
        CommandLine.ParseResult r = Main.commandLine(Map.of()).parseArgs(args);
        while (r.hasSubcommand()) {
            r = r.subcommand();
        }
        return r.commandSpec().commandLine();
    }

    private static String last(List<String> lines) {
        return lines.get(lines.size() - 1);
    }

    @Test
    void noTpmDevice_pointsAtASoftwareTpm() {
        ErrorReport r = ErrorReport.of(new TpmTransportException("cannot open TPM device /dev/tpmrm0: no such file;"
                + " check that it exists", new NoSuchFileException("/dev/tpmrm0")), parsed("tpm", "info"));
        assertEquals(List.of("error: cannot open TPM device /dev/tpmrm0: no such file; check that it exists",
                "next: no TPM at /dev/tpmrm0 here: check --tpm, or use a software TPM: `tpmphone swtpm start` prints"
                        + " a TPM URI to pass with --tpm"), r.lines(), "the cause says nothing new: left out");
        assertEquals(1, r.exitCode());
    }

    @Test
    void tpmDeviceNotPermitted_saysWhichGroup() {
        ErrorReport r = ErrorReport.of(new TpmTransportException("cannot open TPM device /dev/tpmrm0: permission"
                + " denied", new AccessDeniedException("/dev/tpmrm0")), parsed("tpm", "info"));
        String next = last(r.lines());
        assertTrue(next.startsWith("next: user ") && next.contains("may not open /dev/tpmrm0: add it to group tss"),
                next);
    }

    @Test
    void swtpmNotListening_saysHowToStartOne() {
        ErrorReport r = ErrorReport.of(new TpmTransportException("TPM connection to 127.0.0.1:1 failed: Connection"
                + " refused", new ConnectException("Connection refused")), parsed("tpm", "info"));
        assertEquals("next: check --tpm; `tpmphone swtpm start` starts a swtpm and prints its TPM URI",
                last(r.lines()));
    }

    @Test
    void swtpmNotInstalled_saysHowToInstallIt() {
        ErrorReport r = ErrorReport.of(new SwtpmNotInstalledException("swtpm", "/usr/bin/swtpm"),
                parsed("swtpm", "start"));
        assertEquals("next: install swtpm: apt-get install -y swtpm swtpm-tools (./tpmphone installs it when run as"
                + " root)", last(r.lines()));
    }

    @Test
    void wrongServerCertificate_pointsAtTheServersCertificate() {
        Exception e = new AttestationClientException(0, "unreachable", null, "attestation server https://h:8443"
                + " unreachable for /v1/policy: PKIX path building failed", new SSLHandshakeException("PKIX path"
                + " building failed"));
        ErrorReport r = ErrorReport.of(e, parsed("policy", "show", "--server", "https://h:8443", "--server-cert",
                "c.pem", "--admin-token-file", "t"));
        assertTrue(last(r.lines()).startsWith("next: check --server-cert: it must be the certificate this server"
                + " presents, its STATE/keys/tls-cert.pem"), r.lines().toString());
        assertEquals(2, r.lines().size(), "the repeated cause is left out: " + r.lines());
    }

    @Test
    void refusedAdminToken_pointsAtTheServersToken() {
        Exception e = new AttestationClientException(403, "forbidden", null, "/v1/policy refused (403): the admin"
                + " credential is not valid", null);
        ErrorReport r = ErrorReport.of(e, parsed("policy", "show", "--server", "https://h:8443", "--server-cert",
                "c.pem", "--admin-token-file", "t"));
        assertEquals("next: check --admin-token-file: it must hold the token the server was started with"
                + " (`tpmphone server --admin-token-file`)", last(r.lines()));
    }

    @Test
    void missingAdminTokenOfTheServer_saysHowToCreateOne() {
        ErrorReport r = ErrorReport.of(new NoSuchFileException("admin.token"), parsed("server", "--state", "s",
                "--admin-token-file", "admin.token"));
        assertEquals(List.of("error: no such file: admin.token", "next: --admin-token-file admin.token does not"
                + " exist: pass --generate-admin-token to create it"), r.lines());
    }

    @Test
    void portInUse_saysToChooseAnotherListenAddress() {
        ErrorReport r = ErrorReport.of(new IOException("Failed to bind to /127.0.0.1:8443",
                new BindException("Address already in use")), parsed("server", "--state", "s", "--admin-token-file",
                "t"));
        assertEquals(List.of("error: Failed to bind to /127.0.0.1:8443", "  caused by: Address already in use",
                "next: another process listens there: stop it, or choose another --listen host:port"), r.lines());
    }

    @Test
    void meaninglessValue_isAUsageError() {
        ErrorReport r = ErrorReport.of(new IllegalArgumentException("PCR selection 'sha256:99': out of range"),
                parsed("tpm", "pcrread"));
        assertEquals(2, r.exitCode());
        assertEquals("see: tpmphone tpm pcrread --help", last(r.lines()));
    }

    @Test
    void unknownFailure_saysWhatFailedWithoutInventingAStep() {
        ErrorReport r = ErrorReport.of(new IOException("disk full", new IOException("write failed")),
                parsed("tpm", "info"));
        assertEquals(List.of("error: disk full", "  caused by: write failed"), r.lines());
        assertEquals(1, r.exitCode());
    }
}
