package io.tpmphone.attestation;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Builds measurement logs and quoted PCR values that match {@code example-policy.json}: release softphone-0.1.0
 * measured into PCR 14, boot PCRs 0 and 7 at their reference values. Content digests are SHA-256 of fixed strings.
 */
final class Measurements {
    static final int PCR = 14;
    static final String JDK = "/usr/lib/jvm/java-17-openjdk-amd64";
    static final String JAVA = JDK + "/bin/java";
    static final String LIBJVM = JDK + "/lib/server/libjvm.so";
    static final List<String> JARS = List.of("softphone-core.jar", "attestation-protocol.jar", "jain-sip-ri.jar");
    static final List<String> ARGV = List.of(JAVA, "-XX:+DisableAttachMechanism", "-XX:-UsePerfData", "-cp",
            "softphone-core.jar:attestation-protocol.jar:jain-sip-ri.jar", "io.tpmphone.softphone.Main", "--config",
            "softphone.properties");
    static final byte[] BASELINE = sha256("firmware extended PCR 14 at boot");

    private Measurements() {
    }

    /** One event to append: type, data and the content its digest is taken over. */
    record Step(EventType type, String data, byte[] digest) {
        static Step of(EventType type, String data, String content) {
            return new Step(type, data, sha256(content));
        }
    }

    static byte[] sha256(String s) {
        return HashAlgorithm.SHA256.digest(s.getBytes(StandardCharsets.UTF_8));
    }

    static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    static String examplePolicyJson() {
        try (InputStream in = Measurements.class.getResourceAsStream("example-policy.json")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static AttestationPolicy examplePolicy() {
        try {
            return AttestationPolicy.parse(examplePolicyJson());
        } catch (PolicyException e) {
            throw new AssertionError(e);
        }
    }

    static Step jar(String name, String version) {
        return Step.of(EventType.CLASSPATH_JAR, name, "jar bytes of " + name + " " + version);
    }

    static Step commandLine(List<String> argv) {
        String joined = String.join("\0", argv);
        return Step.of(EventType.COMMAND_LINE, joined, joined);
    }

    /** The measurements of an approved softphone-0.1.0 launch, without ISOLATION and LAUNCH. */
    static List<Step> approvedMeasurements() {
        List<Step> steps = new ArrayList<>();
        steps.add(Step.of(EventType.JVM, JAVA, "java launcher 17.0.15"));
        steps.add(Step.of(EventType.JVM, LIBJVM, "libjvm 17.0.15"));
        for (String j : JARS) {
            steps.add(jar(j, "0.1.0"));
        }
        steps.add(Step.of(EventType.CONFIGURATION, "softphone.properties", "sip.port=5061\n"));
        steps.add(commandLine(ARGV));
        return steps;
    }

    /** Approved measurements, then ISOLATION if asked, then LAUNCH. */
    static List<Step> approvedLaunch(boolean isolation) {
        List<Step> steps = approvedMeasurements();
        if (isolation) {
            steps.add(Step.of(EventType.ISOLATION, "pid,mnt,ipc namespaces; jars read-only", "isolation v1"));
        }
        steps.add(Step.of(EventType.LAUNCH, "pid 4242", "launch 4242"));
        return steps;
    }

    static MeasurementLog log(List<Step> steps) {
        MeasurementLog.Builder b = MeasurementLog.builder(PCR, BASELINE);
        for (Step s : steps) {
            b.append(s.type(), s.digest(), s.data());
        }
        return b.build();
    }

    /** Quoted sha256 values of PCRs 0, 7 and 14, with 14 set to {@code pcr14}. */
    static PcrValues quote(byte[] pcr14) {
        return PcrValues.of(PcrSelection.of(HashAlgorithm.SHA256, 0, 7, PCR),
                List.of(sha256("boot pcr 0"), sha256("boot pcr 7 alt"), pcr14));
    }

    /** The quote an honest TPM gives for {@code log}. */
    static PcrValues quoteFor(MeasurementLog log) {
        return quote(log.replay(PCR).value());
    }
}
