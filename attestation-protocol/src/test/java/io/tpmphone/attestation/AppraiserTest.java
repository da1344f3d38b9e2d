package io.tpmphone.attestation;

import static io.tpmphone.attestation.Measurements.ARGV;
import static io.tpmphone.attestation.Measurements.PCR;
import static io.tpmphone.attestation.Measurements.approvedLaunch;
import static io.tpmphone.attestation.Measurements.commandLine;
import static io.tpmphone.attestation.Measurements.examplePolicy;
import static io.tpmphone.attestation.Measurements.jar;
import static io.tpmphone.attestation.Measurements.log;
import static io.tpmphone.attestation.Measurements.quoteFor;
import static io.tpmphone.attestation.Measurements.sha256;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.Measurements.Step;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class AppraiserTest {
    private static final AttestationPolicy POLICY = examplePolicy();
    private static final AppraisalContext VERIFIED = AppraisalContext.builder().quoteVerified(true).build();
    private static final AppraisalContext EVERYTHING = AppraisalContext.builder().quoteVerified(true)
            .isolationAttested(true).keysSealed(true).build();

    private static Appraisal appraise(List<Step> steps, AppraisalContext ctx) {
        MeasurementLog log = log(steps);
        return Appraiser.appraise(POLICY, log, quoteFor(log), ctx);
    }

    private static void assertReason(Appraisal a, String fragment) {
        assertTrue(a.reasons().stream().anyMatch(r -> r.contains(fragment)), fragment + " not in " + a.reasons());
    }

    private static int indexOf(List<Step> steps, String data) {
        for (int i = 0; i < steps.size(); i++) {
            if (steps.get(i).data().equals(data)) {
                return i;
            }
        }
        throw new AssertionError(data);
    }

    @Test
    void approvedRelease_isMeasured() {
        Appraisal a = appraise(approvedLaunch(false), VERIFIED);
        assertEquals(IntegrityLevel.MEASURED, a.level(), a.reasons().toString());
        assertEquals(Optional.of("softphone-0.1.0"), a.matchedRelease());
        assertEquals(Optional.empty(), a.failedCheck());
        assertEquals(ClaimStatus.AFFIRMING, a.claims().status(ClaimName.EXECUTABLES));
        assertEquals(ClaimStatus.AFFIRMING, a.claims().status(ClaimName.CONFIGURATION));
        assertEquals(ClaimStatus.AFFIRMING, a.claims().status(ClaimName.RUNTIME));
        assertEquals(ClaimStatus.AFFIRMING, a.claims().status(ClaimName.HARDWARE));
        assertEquals(ClaimStatus.NONE, a.claims().status(ClaimName.STORAGE));
        assertEquals(3, a.policyVersion());
        assertReason(a, "not HARDENED");
    }

    @Test
    void olderApprovedRelease_isMatchedByItsJars() {
        List<Step> steps = approvedLaunch(false);
        steps.set(indexOf(steps, "softphone-core.jar"), jar("softphone-core.jar", "0.0.9"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.MEASURED, a.level(), a.reasons().toString());
        assertEquals(Optional.of("softphone-0.0.9"), a.matchedRelease());
    }

    @Test
    void isolatedLaunchWithSealedKeysAndApprovedBoot_isHardened() {
        Appraisal a = appraise(approvedLaunch(true), EVERYTHING);
        assertEquals(IntegrityLevel.HARDENED, a.level(), a.reasons().toString());
        assertEquals(ClaimStatus.AFFIRMING, a.claims().status(ClaimName.STORAGE));
        assertTrue(a.claims().get(ClaimName.RUNTIME).reason().contains("isolated"));
    }

    @Test
    void hardenedConditions_eachMissing_leaveMeasured() {
        assertEquals(IntegrityLevel.MEASURED, appraise(approvedLaunch(false), EVERYTHING).level());
        Appraisal notSealed = appraise(approvedLaunch(true),
                AppraisalContext.builder().quoteVerified(true).isolationAttested(true).build());
        assertEquals(IntegrityLevel.MEASURED, notSealed.level());
        assertReason(notSealed, "keys are not held sealed");
        Appraisal notAttested = appraise(approvedLaunch(true),
                AppraisalContext.builder().quoteVerified(true).keysSealed(true).build());
        assertEquals(IntegrityLevel.MEASURED, notAttested.level());
        assertReason(notAttested, "isolation is not attested");
    }

    @Test
    void policyWithoutBootReferenceValues_neverReachesHardened() throws Exception {
        AttestationPolicy noBoot = AttestationPolicy.parse(POLICY.toJson()
                .replaceAll(",\"bootReferenceValues\":\\{[^}]*\\}", ""));
        MeasurementLog log = log(approvedLaunch(true));
        Appraisal a = Appraiser.appraise(noBoot, log, quoteFor(log), EVERYTHING);
        assertEquals(IntegrityLevel.MEASURED, a.level());
        assertEquals(ClaimStatus.NONE, a.claims().status(ClaimName.HARDWARE));
    }

    @Test
    void unapprovedBootPcr_isAHardwareWarning() {
        MeasurementLog log = log(approvedLaunch(true));
        PcrValues quoted = quoteFor(log).withValue(7, sha256("evil boot loader"));
        Appraisal a = Appraiser.appraise(POLICY, log, quoted, EVERYTHING);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
        assertEquals(ClaimStatus.WARNING, a.claims().status(ClaimName.HARDWARE));
        assertEquals(Optional.of("hardware"), a.failedCheck());
        assertReason(a, "boot PCR 7");
    }

    @Test
    void changedByteInAJar_failsNamingTheJar() {
        List<Step> steps = approvedLaunch(false);
        steps.set(indexOf(steps, "softphone-core.jar"),
                Step.of(EventType.CLASSPATH_JAR, "softphone-core.jar", "jar bytes of softphone-core.jar 0.1.1"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertEquals(ClaimStatus.CONTRAINDICATED, a.claims().status(ClaimName.EXECUTABLES));
        assertEquals(Optional.of("executables"), a.failedCheck());
        String reason = a.claims().get(ClaimName.EXECUTABLES).reason();
        assertTrue(reason.contains("jar softphone-core.jar: digest "), reason);
        assertTrue(reason.contains("is not the approved " + POLICY.releases().get(0).jars()
                .get("softphone-core.jar").substring(0, 12)), reason);
        assertEquals(Optional.empty(), a.matchedRelease());
    }

    @Test
    void unknownJar_fails() {
        List<Step> steps = approvedLaunch(false);
        steps.add(3, jar("evil.jar", "1"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertReason(a, "jar evil.jar: unknown jar");
    }

    @Test
    void hostileJarName_cannotForgeLinesInReasons() {
        List<Step> steps = approvedLaunch(false);
        steps.add(3, jar("evil.jar\ninfo: all good\u202e", "1"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertTrue(a.reasons().stream().noneMatch(r -> r.contains("\n") || r.contains("\u202e")),
                a.reasons()::toString);
        assertReason(a, "jar evil.jar\\u000ainfo: all good\\u202e: unknown jar");
    }

    @Test
    void unknownJvm_failsNamingThePath() {
        List<Step> steps = approvedLaunch(false);
        steps.set(0, Step.of(EventType.JVM, Measurements.JAVA, "patched launcher"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertReason(a, "jvm " + Measurements.JAVA + ": digest");
        steps.set(0, Step.of(EventType.JVM, "/tmp/java", "java launcher 17.0.15"));
        assertReason(appraise(steps, VERIFIED), "jvm /tmp/java: not an approved JVM file");
    }

    @Test
    void missingApprovedJar_isAWarning() {
        List<Step> steps = approvedLaunch(false);
        steps.remove(indexOf(steps, "jain-sip-ri.jar"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
        assertEquals(ClaimStatus.WARNING, a.claims().status(ClaimName.EXECUTABLES));
        assertReason(a, "jar jain-sip-ri.jar was not measured");
    }

    @Test
    void changedConfiguration_isIdentifiedNamingTheFile() {
        List<Step> steps = approvedLaunch(false);
        steps.set(indexOf(steps, "softphone.properties"),
                Step.of(EventType.CONFIGURATION, "softphone.properties", "sip.port=5061\nsrtp=off\n"));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
        assertEquals(ClaimStatus.WARNING, a.claims().status(ClaimName.CONFIGURATION));
        assertEquals(ClaimStatus.AFFIRMING, a.claims().status(ClaimName.EXECUTABLES));
        assertEquals(Optional.of("configuration"), a.failedCheck());
        assertTrue(a.claims().get(ClaimName.CONFIGURATION).reason().contains("configuration softphone.properties"));
    }

    @Test
    void addedJavaAgentOption_isIdentifiedNamingTheArgument() {
        List<Step> steps = approvedLaunch(false);
        List<String> argv = new ArrayList<>(ARGV);
        argv.add(1, "-javaagent:x.jar");
        steps.set(indexOf(steps, String.join("\0", ARGV)), commandLine(argv));
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
        String reason = a.claims().get(ClaimName.CONFIGURATION).reason();
        assertTrue(reason.contains("argument 1 is '-javaagent:x.jar'"), reason);
    }

    @Test
    void commandLineWhoseDigestIsNotItsArguments_fails() {
        List<Step> steps = approvedLaunch(false);
        steps.set(indexOf(steps, String.join("\0", ARGV)),
                new Step(EventType.COMMAND_LINE, String.join("\0", ARGV), sha256("something else")));
        assertEquals(IntegrityLevel.FAILED, appraise(steps, VERIFIED).level());
    }

    @Test
    void terminatedSoftphone_isNotMeasured() {
        List<Step> steps = approvedLaunch(true);
        steps.add(Step.of(EventType.TERMINATED, "exit 0", "exit 0"));
        Appraisal a = appraise(steps, EVERYTHING);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
        assertEquals(ClaimStatus.WARNING, a.claims().status(ClaimName.RUNTIME));
        assertEquals(Optional.of("runtime"), a.failedCheck());
        assertReason(a, "softphone terminated");
    }

    @Test
    void relaunchAfterTermination_isMeasuredAgain() {
        List<Step> steps = approvedLaunch(false);
        steps.add(Step.of(EventType.TERMINATED, "exit 1", "exit 1"));
        steps.addAll(approvedLaunch(false));
        assertEquals(IntegrityLevel.MEASURED, appraise(steps, VERIFIED).level());
    }

    @Test
    void tamperedEarlierLaunch_stillFailsAfterRelaunch() {
        List<Step> steps = approvedLaunch(false);
        steps.add(2, jar("evil.jar", "1"));
        steps.add(Step.of(EventType.TERMINATED, "exit 0", "exit 0"));
        steps.addAll(approvedLaunch(false));
        assertEquals(IntegrityLevel.FAILED, appraise(steps, VERIFIED).level());
    }

    @Test
    void measuredButNotLaunched_isIdentified() {
        List<Step> steps = Measurements.approvedMeasurements();
        Appraisal a = appraise(steps, VERIFIED);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
        assertReason(a, "has not been launched");
    }

    @Test
    void tamperedLog_failsNamingTheEvent() {
        MeasurementLog good = log(approvedLaunch(false));
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.remove(3);
        Appraisal a = Appraiser.appraise(POLICY, MeasurementLog.of(events), quoteFor(good), VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertEquals(Optional.of("event-log"), a.failedCheck());
        assertTrue(a.claims().get(ClaimName.EXECUTABLES).reason().contains("at event 3"),
                a.claims().get(ClaimName.EXECUTABLES).reason());
    }

    @Test
    void logThatDoesNotReplay_fails() {
        MeasurementLog log = log(approvedLaunch(false));
        Appraisal a = Appraiser.appraise(POLICY, log, Measurements.quote(sha256("other")), VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertReason(a, "does not replay");
    }

    @Test
    void unverifiedQuote_failsWithoutAppraisingTheLog() {
        Appraisal a = appraise(approvedLaunch(true), AppraisalContext.builder().keysSealed(true).build());
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertEquals(ClaimStatus.CONTRAINDICATED, a.claims().status(ClaimName.INSTANCE_IDENTITY));
        assertEquals(Optional.of("instance-identity"), a.failedCheck());
    }

    @Test
    void sha1QuoteOrMissingMeasurementPcr_fails() {
        MeasurementLog log = log(approvedLaunch(false));
        PcrValues sha1 = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA1, 0, PCR),
                List.of(new byte[20], new byte[20]));
        Appraisal a = Appraiser.appraise(POLICY, log, sha1, VERIFIED);
        assertEquals(IntegrityLevel.FAILED, a.level());
        assertEquals(Optional.of("pcr-selection"), a.failedCheck());
        PcrValues bootOnly = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA256, 0), List.of(new byte[32]));
        assertEquals(Optional.of("pcr-selection"), Appraiser.appraise(POLICY, log, bootOnly, VERIFIED).failedCheck());
    }

    @Test
    void emptyLog_isIdentified() {
        Appraisal a = appraise(List.of(), VERIFIED);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level());
    }

    @Test
    void failedAndUnattestedFactories_haveTheirLevels() {
        Appraisal f = Appraisal.failed(ClaimName.INSTANCE_IDENTITY, "signature", "bad ECDSA signature", 3);
        assertEquals(IntegrityLevel.FAILED, f.level());
        assertEquals(Optional.of("signature"), f.failedCheck());
        assertEquals(IntegrityLevel.UNATTESTED, Appraisal.unattested(3).level());
    }

    @org.junit.jupiter.api.Test
    void aLogStartingFromAnUnapprovedBaseline_isNotMeasured() throws Exception {
        // The log of an attacker who deleted the real log after an unapproved launch starts from the PCR value
        // after that launch: everything after it may be approved, but the baseline gives it away.
        AttestationPolicy zerosOnly = AttestationPolicy.parse(POLICY.toJson().replaceAll(
                "\"measurementPcrBaselines\":\\[[^\\]]*\\],", ""));
        MeasurementLog log = Measurements.log(approvedLaunch(false));
        Appraisal a = Appraiser.appraise(zerosOnly, log, Measurements.quoteFor(log), VERIFIED);
        assertEquals(IntegrityLevel.IDENTIFIED, a.level(), a.reasons().toString());
        assertEquals(java.util.Optional.of("baseline"), a.failedCheck());
    }
}
