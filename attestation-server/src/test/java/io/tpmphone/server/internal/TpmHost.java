package io.tpmphone.server.internal;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MeasuredCommandLine;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmUri;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A host for the server's unit tests: a real swtpm with an EK certificate, an AK under the EK, and a measured launch of
 * {@link #RELEASE} in PCR 14 (the events the agent records, without starting anything). Quotes come from the TPM, so
 * the server's checks run against real TPM structures. One owner thread at a time.
 */
final class TpmHost implements AutoCloseable {
    static final int PCR = 14;
    static final String JAVA = "/opt/jdk-17/bin/java";
    static final List<String> ARGV = MeasuredCommandLine.forLaunch(JAVA, List.of(), List.of("softphone.jar"),
            "io.tpmphone.softphone.SoftphoneMain", "softphone.properties", List.of()).argv();
    static final String RELEASE = "softphone-test";
    /** PCRs a keystore on this host is sealed to: the policy's boot PCRs and the measurement PCR. */
    static final PcrSelection KEYSTORE_PCRS = PcrSelection.parse("sha256:0,1,2,3,4,5,6,7,14");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final SwtpmProcess swtpm;
    private final TpmClient tpm;
    private final TpmtPublic ek;
    private final TpmtPublic ak;
    private final MeasurementLog.Builder log;
    private MeasurementLog measured;

    private TpmHost(SwtpmProcess swtpm, TpmClient tpm, TpmtPublic ek, TpmtPublic ak, byte[] baseline) {
        this.swtpm = swtpm;
        this.tpm = tpm;
        this.ek = ek;
        this.ak = ak;
        this.log = MeasurementLog.builder(PCR, baseline);
        this.measured = log.build();
    }

    /** Starts swtpm and creates the EK and the AK; measures nothing yet. */
    static TpmHost start() throws TpmException {
        SwtpmProcess swtpm = SwtpmProcess.builder().withEkCertificate(true).start();
        try {
            TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
            TpmtPublic ek = tpm.ensureEndorsementKey(EkType.RSA_2048);
            TpmtPublic ak = tpm.createAttestationKey(EkType.RSA_2048.defaultHandle(), PersistentHandle.AK);
            byte[] baseline = tpm.pcrRead(PcrSelection.parse("sha256:" + PCR)).value(PCR);
            return new TpmHost(swtpm, tpm, ek, ak, baseline);
        } catch (TpmException | RuntimeException e) {
            swtpm.close();
            throw e;
        }
    }

    /** Measures the launch of {@link #RELEASE}: JVM, jar, configuration, command line, launch. */
    TpmHost measureRelease() throws TpmException {
        measure(EventType.JVM, sha256("java"), JAVA);
        measure(EventType.CLASSPATH_JAR, sha256("jar"), "softphone.jar");
        measure(EventType.CONFIGURATION, sha256("configuration"), "softphone.properties");
        MeasuredCommandLine argv = MeasuredCommandLine.of(ARGV);
        measure(EventType.COMMAND_LINE, argv.digest(), new String(argv.encoded(), StandardCharsets.UTF_8));
        measure(EventType.LAUNCH, sha256("launch"), "pid 4242");
        return this;
    }

    /** Appends one event to the log and extends it into PCR 14, as the agent does. */
    void measure(EventType type, byte[] digest, String data) throws TpmException {
        log.append(type, digest, data);
        measured = log.build();
        MeasurementEvent e = measured.event(measured.size() - 1);
        tpm.pcrExtend(PCR, e.extendDigest());
    }

    /** The policy approving {@link #RELEASE}, with boot PCRs 0..7 (no reference values: MEASURED at best). */
    static String policy(int version) throws IOException {
        Map<String, Object> release = new LinkedHashMap<>();
        release.put("name", RELEASE);
        release.put("jvm", Map.of(JAVA, hex(sha256("java"))));
        release.put("jars", Map.of("softphone.jar", hex(sha256("jar"))));
        release.put("configuration", Map.of("softphone.properties", hex(sha256("configuration"))));
        release.put("commandLine", ARGV);
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("version", version);
        p.put("measurementPcr", PCR);
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of(0, 1, 2, 3, 4, 5, 6, 7));
        p.put("releases", List.of(release));
        p.put("requireIsolation", false);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", 300);
        return JSON.writeValueAsString(p);
    }

    MeasurementLog log() {
        return measured;
    }

    TpmClient tpm() {
        return tpm;
    }

    TpmtPublic ek() {
        return ek;
    }

    TpmtPublic ak() {
        return ak;
    }

    String akId() {
        return HexFormat.of().formatHex(ak.name());
    }

    byte[] ekCertificate() throws TpmException {
        return tpm.readEndorsementCertificate(EkType.RSA_2048).orElseThrow(() -> new TpmException(
                "swtpm " + swtpm + " has no RSA EK certificate"));
    }

    /** The registry entry of this host as an enrollment would write it. */
    Registry.Host enrolledAs(String host) throws TpmException {
        return new Registry.Host(host, ek.name(), ek.encoded(), ekCertificate(), ak.name(), ak.encoded(),
                "2025-01-31T12:00:00Z");
    }

    TpmQuote quote(PcrSelection selection, byte[] qualifyingData) throws TpmException {
        return tpm.quote(PersistentHandle.AK, selection, qualifyingData);
    }

    /** The body of POST /v1/appraisals for {@code quote} over {@code nonce} with {@code log}, plus {@code extra}. */
    String appraisalRequest(byte[] nonce, TpmQuote quote, MeasurementLog log, Map<String, Object> extra)
            throws IOException {
        Base64.Encoder b64 = Base64.getEncoder();
        List<String> values = new ArrayList<>();
        for (byte[] v : quote.pcrValues().values()) {
            values.add(HexFormat.of().formatHex(v));
        }
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("akId", akId());
        request.put("nonce", HexFormat.of().formatHex(nonce));
        request.put("attest", b64.encodeToString(quote.attest()));
        request.put("signature", b64.encodeToString(quote.signature()));
        request.put("pcrSelection", quote.pcrValues().selection().toString());
        request.put("pcrValues", values);
        request.put("eventLog", b64.encodeToString(log.encode()));
        request.putAll(extra);
        return JSON.writeValueAsString(request);
    }

    /** The CA chain (issuing CA, root) of this swtpm's EK certificate, for the server's trust list. */
    List<X509Certificate> ekCaChain() throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> chain = new ArrayList<>();
        for (Path p : List.of(swtpm.caCertificate(), swtpm.rootCertificate())) {
            try (InputStream in = Files.newInputStream(p)) {
                chain.add((X509Certificate) cf.generateCertificate(in));
            }
        }
        return chain;
    }

    static byte[] sha256(String s) {
        return HashAlgorithm.SHA256.digest(s.getBytes(StandardCharsets.UTF_8));
    }

    static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    @Override
    public void close() {
        tpm.close();
        swtpm.close();
    }
}
