package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.Hex;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Appraises verified evidence against an {@link AttestationPolicy}: a pure function of its arguments, stateless and
 * thread-safe. It never throws for bad evidence: it fails closed to a low {@link IntegrityLevel} with reasons.
 *
 * <p>Order (see {@code docs/attestation.md}):
 * <ol>
 *   <li>{@code instance-identity}: the caller verified AK, signature, nonce and PCR digest
 *       ({@link AppraisalContext#quoteVerified()}); if not: FAILED, stop.
 *   <li>{@code pcr-selection}, {@code event-log}: {@link LogReplayVerifier} (bank, structure, replay); if it
 *       throws: EXECUTABLES contraindicated naming the event, FAILED, stop.
 *   <li>The log is split into launches (measurements, optional ISOLATION, LAUNCH, optional TERMINATED). Each launch
 *       is compared with its best-matching release (the one whose jars all match, else the one with the most
 *       matching jar digests, first in policy order on a tie): {@code executables} (JVM files, jars),
 *       {@code configuration} (configuration files, command line).
 *   <li>{@code runtime}: the last launch must have been launched and not terminated; a terminated earlier launch
 *       followed by a complete new one is a relaunch and does not count against it.
 *   <li>{@code hardware}: boot PCRs against the policy's reference values, if it has any.
 *   <li>{@code storage}: {@link AppraisalContext#keysSealed()}.
 *   <li>Level: FAILED if any claim is contraindicated, IDENTIFIED if any is a warning, else MEASURED; HARDENED if
 *       also hardware and storage are affirming and, when the policy requires isolation, the last launch has an
 *       ISOLATION event and {@link AppraisalContext#isolationAttested()}.
 * </ol>
 */
public final class Appraiser {
    private Appraiser() {
    }

    /** Appraises {@code log} and {@code quoted} (already verified as {@code ctx} says) under {@code policy}. */
    public static Appraisal appraise(AttestationPolicy policy, MeasurementLog log, PcrValues quoted,
            AppraisalContext ctx) {
        Objects.requireNonNull(policy, "policy");
        Objects.requireNonNull(log, "log");
        Objects.requireNonNull(quoted, "quoted");
        Objects.requireNonNull(ctx, "ctx");
        Findings f = new Findings();

        if (!ctx.quoteVerified()) {
            f.add(ClaimName.INSTANCE_IDENTITY, ClaimStatus.CONTRAINDICATED, "instance-identity",
                    "the AK enrollment, quote signature, nonce and PCR digest were not verified; "
                            + "evidence is not appraised without them");
            return f.result(IntegrityLevel.FAILED, null, policy.version());
        }
        f.add(ClaimName.INSTANCE_IDENTITY, ClaimStatus.AFFIRMING, null,
                "enrolled AK; quote signature, nonce and PCR digest verified");

        try {
            if (quoted.selection().bank() != policy.pcrBank()) {
                throw new EventLogException(EventLogException.Problem.PCR_SELECTION, -1, "the quote is over the "
                        + quoted.selection().bank().tpmName() + " bank; the policy requires "
                        + policy.pcrBank().tpmName());
            }
            LogReplayVerifier.check(log, quoted, policy.measurementPcr(),
                    ctx.previouslyAcceptedLog().orElse(null));
        } catch (EventLogException e) {
            String check = e.problem() == EventLogException.Problem.PCR_SELECTION ? "pcr-selection" : "event-log";
            f.add(ClaimName.EXECUTABLES, ClaimStatus.CONTRAINDICATED, check, e.getMessage());
            return f.result(IntegrityLevel.FAILED, null, policy.version());
        }

        String baseline = Hex.of(log.event(0).contentDigest());
        if (!policy.measurementPcrBaselines().contains(baseline)) {
            f.add(ClaimName.EXECUTABLES, ClaimStatus.WARNING, "baseline", "the log starts from PCR "
                    + policy.measurementPcr() + " = " + baseline + ", not an approved baseline: what was measured"
                    + " before it is unaccounted for (log deleted or started late in this boot?)");
        }

        List<String> runtimeAnomalies = new ArrayList<>();
        List<Launch> launches = splitIntoLaunches(log, runtimeAnomalies);
        String matched = null;
        Launch last = launches.isEmpty() ? null : launches.get(launches.size() - 1);
        for (Launch launch : launches) {
            ReleaseMatch m = bestRelease(policy, launch);
            appraiseLaunch(policy, launch, m, f, launches.size() > 1);
            if (launch == last) {
                matched = m.allJars ? m.release.name() : null;
                if (f.status(ClaimName.EXECUTABLES) == ClaimStatus.NONE) {
                    f.add(ClaimName.EXECUTABLES, ClaimStatus.AFFIRMING, null, "JVM and " + launch.jars().size()
                            + " jar(s) match release " + m.release.name());
                }
                if (f.status(ClaimName.CONFIGURATION) == ClaimStatus.NONE) {
                    f.add(ClaimName.CONFIGURATION, ClaimStatus.AFFIRMING, null,
                            "configuration and command line match release " + m.release.name());
                }
            }
        }
        for (String anomaly : runtimeAnomalies) {
            f.add(ClaimName.RUNTIME, ClaimStatus.WARNING, "runtime", anomaly);
        }
        if (last == null) {
            f.add(ClaimName.EXECUTABLES, ClaimStatus.WARNING, "executables",
                    "nothing was measured after the baseline: no JVM, jar or configuration");
            f.add(ClaimName.RUNTIME, ClaimStatus.WARNING, "runtime", "no softphone was launched");
        } else if (last.launchIndex < 0) {
            f.add(ClaimName.RUNTIME, ClaimStatus.WARNING, "runtime", "the softphone measured from event "
                    + last.firstIndex() + " has not been launched (no LAUNCH event)");
        } else if (last.terminatedIndex >= 0) {
            String status = printable(log.event(last.terminatedIndex).dataAsString());
            f.add(ClaimName.RUNTIME, ClaimStatus.WARNING, "runtime", "softphone terminated (event "
                    + last.terminatedIndex + ", exit status '" + status + "')");
        } else if (f.status(ClaimName.RUNTIME) == ClaimStatus.NONE) {
            String isolation = last.isolationIndex < 0 ? ", no isolation recorded" : ", isolated (event "
                    + last.isolationIndex + ": " + printable(log.event(last.isolationIndex).dataAsString()) + ")";
            f.add(ClaimName.RUNTIME, ClaimStatus.AFFIRMING, null, "softphone running since event "
                    + last.launchIndex + isolation);
        }

        appraiseBoot(policy, quoted, f);
        if (ctx.keysSealed()) {
            f.add(ClaimName.STORAGE, ClaimStatus.AFFIRMING, null, "keys are held sealed to the measured state");
        }

        IntegrityLevel level = f.claims().cap();
        if (level == IntegrityLevel.HARDENED) {
            for (ClaimName n : List.of(ClaimName.INSTANCE_IDENTITY, ClaimName.EXECUTABLES, ClaimName.CONFIGURATION,
                    ClaimName.RUNTIME)) {
                if (f.status(n) != ClaimStatus.AFFIRMING) {
                    f.add(n, ClaimStatus.WARNING, n.key(), n.key() + " was not affirmed");
                }
            }
            level = f.claims().cap();
        }
        if (level == IntegrityLevel.HARDENED) {
            List<String> missing = new ArrayList<>();
            if (f.status(ClaimName.HARDWARE) != ClaimStatus.AFFIRMING) {
                missing.add("the boot PCRs are not affirmed (the policy needs boot reference values)");
            }
            if (f.status(ClaimName.STORAGE) != ClaimStatus.AFFIRMING) {
                missing.add("keys are not held sealed");
            }
            if (policy.requireIsolation()) {
                if (last == null || last.isolationIndex < 0) {
                    missing.add("the launch has no ISOLATION event");
                } else if (!ctx.isolationAttested()) {
                    missing.add("isolation is not attested");
                }
            }
            if (!missing.isEmpty()) {
                level = IntegrityLevel.MEASURED;
                f.note("not HARDENED: " + String.join("; ", missing));
            }
        }
        return f.result(level, matched, policy.version());
    }

    private static List<Launch> splitIntoLaunches(MeasurementLog log, List<String> anomalies) {
        List<Launch> launches = new ArrayList<>();
        Launch current = null;
        for (int i = 1; i < log.size(); i++) {
            MeasurementEvent e = log.event(i);
            switch (e.type()) {
                case JVM, CLASSPATH_JAR, CONFIGURATION, COMMAND_LINE, ISOLATION -> {
                    if (current == null || current.terminatedIndex >= 0) {
                        current = new Launch();
                        launches.add(current);
                    } else if (current.launchIndex >= 0) {
                        anomalies.add("event " + i + ": " + e.type()
                                + " recorded while the softphone launched at event " + current.launchIndex
                                + " is running");
                        current = new Launch();
                        launches.add(current);
                    }
                    if (e.type() == EventType.ISOLATION) {
                        current.isolationIndex = i;
                    } else {
                        current.measurements.add(i);
                    }
                }
                case LAUNCH -> {
                    if (current == null || current.terminatedIndex >= 0 || current.launchIndex >= 0) {
                        if (current != null && current.launchIndex >= 0 && current.terminatedIndex < 0) {
                            anomalies.add("event " + i
                                    + ": second LAUNCH while the softphone launched at event "
                                    + current.launchIndex + " is running");
                        }
                        current = new Launch();
                        launches.add(current);
                    }
                    current.launchIndex = i;
                }
                case TERMINATED -> {
                    if (current == null || current.launchIndex < 0 || current.terminatedIndex >= 0) {
                        anomalies.add("event " + i
                                + ": TERMINATED without a running launch");
                    } else {
                        current.terminatedIndex = i;
                    }
                }
                case BASELINE -> throw new IllegalStateException("LogReplayVerifier admits BASELINE only at 0");
            }
        }
        for (Launch l : launches) {
            l.log = log;
        }
        return launches;
    }

    private static ReleaseMatch bestRelease(AttestationPolicy policy, Launch launch) {
        ReleaseMatch best = null;
        for (ApprovedRelease r : policy.releases()) {
            ReleaseMatch m = new ReleaseMatch(r, launch);
            if (best == null || m.betterThan(best)) {
                best = m;
            }
        }
        return best;
    }

    private static void appraiseLaunch(AttestationPolicy policy, Launch launch, ReleaseMatch m, Findings f,
            boolean several) {
        ApprovedRelease r = m.release;
        String in = " (release " + r.name() + (several ? ", launch from event " + launch.firstIndex() : "") + ")";
        Map<String, Integer> seenJvm = new LinkedHashMap<>();
        Map<String, Integer> seenJars = new LinkedHashMap<>();
        Map<String, Integer> seenConfig = new LinkedHashMap<>();
        int commandLines = 0;
        for (int i : launch.measurements) {
            MeasurementEvent e = launch.log.event(i);
            String name = e.dataAsString();
            String shown = printable(name);
            String digest = e.contentDigestHex();
            switch (e.type()) {
                case JVM -> {
                    String approved = r.jvm().get(name);
                    if (approved == null) {
                        f.add(ClaimName.EXECUTABLES, ClaimStatus.CONTRAINDICATED, "executables", "event " + i
                                + ": jvm " + shown + ": not an approved JVM file" + in);
                    } else if (!approved.equals(digest)) {
                        f.add(ClaimName.EXECUTABLES, ClaimStatus.CONTRAINDICATED, "executables", "event " + i
                                + ": jvm " + shown + ": digest " + Hex.abbreviate(digest) + " is not the approved "
                                + Hex.abbreviate(approved) + in);
                    }
                    duplicate(seenJvm, name, i, "jvm", ClaimName.EXECUTABLES, "executables", f);
                }
                case CLASSPATH_JAR -> {
                    String approved = r.jars().get(name);
                    if (approved != null && !approved.equals(digest)) {
                        f.add(ClaimName.EXECUTABLES, ClaimStatus.CONTRAINDICATED, "executables", "event " + i
                                + ": jar " + shown + ": digest " + Hex.abbreviate(digest) + " is not the approved "
                                + Hex.abbreviate(approved) + in);
                    } else if (approved == null) {
                        String other = releaseWithJar(policy, name);
                        f.add(ClaimName.EXECUTABLES, ClaimStatus.CONTRAINDICATED, "executables", "event " + i
                                + ": jar " + shown + ": " + (other == null ? "unknown jar, in no approved release"
                                : "not part of the release (it belongs to release " + other
                                + "); mixing releases is not approved") + in);
                    }
                    duplicate(seenJars, name, i, "jar", ClaimName.EXECUTABLES, "executables", f);
                }
                case CONFIGURATION -> {
                    String approved = r.configuration().get(name);
                    if (approved == null) {
                        f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "event " + i
                                + ": configuration " + shown + ": not an approved configuration file" + in);
                    } else if (!approved.equals(digest)) {
                        f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "event " + i
                                + ": configuration " + shown + ": digest " + Hex.abbreviate(digest)
                                + " is not the approved " + Hex.abbreviate(approved) + in);
                    }
                    duplicate(seenConfig, name, i, "configuration", ClaimName.CONFIGURATION, "configuration", f);
                }
                case COMMAND_LINE -> {
                    commandLines++;
                    appraiseCommandLine(i, e, r, in, commandLines, f);
                }
                default -> throw new IllegalStateException("not a measurement: " + e.type());
            }
        }
        missing(r.jvm().keySet(), seenJvm, "jvm", ClaimName.EXECUTABLES, "executables", in, f);
        missing(r.jars().keySet(), seenJars, "jar", ClaimName.EXECUTABLES, "executables", in, f);
        missing(r.configuration().keySet(), seenConfig, "configuration", ClaimName.CONFIGURATION, "configuration",
                in, f);
        if (commandLines == 0) {
            f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "no command line was measured"
                    + in);
        }
    }

    private static void appraiseCommandLine(int i, MeasurementEvent e, ApprovedRelease r, String in, int count,
            Findings f) {
        if (count > 1) {
            f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "event " + i
                    + ": a second command line in one launch" + in);
            return;
        }
        byte[] data = e.data();
        if (!MessageDigest.isEqual(MeasurementEvent.HASH.digest(data), e.contentDigest())) {
            f.add(ClaimName.CONFIGURATION, ClaimStatus.CONTRAINDICATED, "configuration", "event " + i
                    + ": the command line's digest is not SHA-256 of its recorded arguments");
            return;
        }
        List<String> argv;
        try {
            argv = MeasuredCommandLine.decode(data).argv();
        } catch (MalformedStructureException ex) {
            f.add(ClaimName.CONFIGURATION, ClaimStatus.CONTRAINDICATED, "configuration", "event " + i
                    + ": the command line is not a measured command line: " + ex.getMessage());
            return;
        }
        List<String> approved = r.commandLine();
        for (int k = 0; k < Math.max(argv.size(), approved.size()); k++) {
            if (k >= argv.size()) {
                f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "event " + i
                        + ": command line argument " + k + " is missing; expected '" + approved.get(k) + "'" + in);
                return;
            }
            if (k >= approved.size()) {
                f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "event " + i
                        + ": command line has an extra argument " + k + " '" + printable(argv.get(k)) + "'" + in);
                return;
            }
            if (!argv.get(k).equals(approved.get(k))) {
                f.add(ClaimName.CONFIGURATION, ClaimStatus.WARNING, "configuration", "event " + i
                        + ": command line argument " + k + " is '" + printable(argv.get(k)) + "'; expected '"
                        + approved.get(k) + "'" + in);
                return;
            }
        }
    }

    private static void duplicate(Map<String, Integer> seen, String name, int i, String what, ClaimName claim,
            String check, Findings f) {
        Integer before = seen.putIfAbsent(name, i);
        if (before != null) {
            f.add(claim, ClaimStatus.WARNING, check, "event " + i + ": " + what + " " + printable(name)
                    + " measured again (first at event " + before + ")");
        }
    }

    private static void missing(Iterable<String> approved, Map<String, Integer> seen, String what, ClaimName claim,
            String check, String in, Findings f) {
        for (String name : approved) {
            if (!seen.containsKey(name)) {
                f.add(claim, ClaimStatus.WARNING, check, what + " " + printable(name) + " was not measured" + in);
            }
        }
    }

    /**
     * Event data comes from the attester: shown with control and format characters escaped and cut to 200
     * characters, so a hostile name cannot forge lines in reasons, logs or the audit record.
     */
    static String printable(String s) {
        StringBuilder sb = new StringBuilder();
        for (int k = 0; k < s.length(); k++) {
            if (sb.length() >= 200) {
                return sb + "\u2026";
            }
            char c = s.charAt(k);
            int type = Character.getType(c);
            if (Character.isISOControl(c) || type == Character.FORMAT || type == Character.LINE_SEPARATOR
                    || type == Character.PARAGRAPH_SEPARATOR) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    private static String releaseWithJar(AttestationPolicy policy, String jar) {
        for (ApprovedRelease r : policy.releases()) {
            if (r.jars().containsKey(jar)) {
                return r.name();
            }
        }
        return null;
    }

    private static void appraiseBoot(AttestationPolicy policy, PcrValues quoted, Findings f) {
        List<String> problems = new ArrayList<>();
        for (int pcr : policy.bootPcrs()) {
            if (!quoted.selection().pcrs().contains(pcr)) {
                problems.add("boot PCR " + pcr + " was not quoted; the policy requires it");
                continue;
            }
            List<String> allowed = policy.bootReferenceValues().get(pcr);
            String actual = Hex.of(quoted.value(pcr));
            if (allowed != null && !allowed.contains(actual)) {
                problems.add("boot PCR " + pcr + " is " + Hex.abbreviate(actual) + ", not an approved value");
            }
        }
        for (String p : problems) {
            f.add(ClaimName.HARDWARE, ClaimStatus.WARNING, "hardware", p);
        }
        if (problems.isEmpty() && !policy.bootReferenceValues().isEmpty()) {
            f.add(ClaimName.HARDWARE, ClaimStatus.AFFIRMING, null, "boot PCRs "
                    + policy.bootReferenceValues().keySet() + " hold approved values");
        }
    }

    /** One launch: measurements, optional isolation, the LAUNCH event and an optional TERMINATED event. */
    private static final class Launch {
        final List<Integer> measurements = new ArrayList<>();
        int isolationIndex = -1;
        int launchIndex = -1;
        int terminatedIndex = -1;
        MeasurementLog log;

        int firstIndex() {
            int first = Integer.MAX_VALUE;
            for (int i : new int[] {isolationIndex, launchIndex}) {
                if (i >= 0) {
                    first = Math.min(first, i);
                }
            }
            return measurements.isEmpty() ? first : Math.min(first, measurements.get(0));
        }

        Map<String, String> jars() {
            Map<String, String> jars = new LinkedHashMap<>();
            for (int i : measurements) {
                MeasurementEvent e = log.event(i);
                if (e.type() == EventType.CLASSPATH_JAR) {
                    jars.putIfAbsent(e.dataAsString(), e.contentDigestHex());
                }
            }
            return jars;
        }
    }

    /** How well a launch matches a release, compared lexicographically. */
    private static final class ReleaseMatch {
        final ApprovedRelease release;
        final boolean allJars;
        final int jarMatches;
        final int jvmMatches;
        final int configMatches;
        final boolean commandLine;

        ReleaseMatch(ApprovedRelease r, Launch launch) {
            this.release = r;
            int jars = 0;
            int jvm = 0;
            int config = 0;
            int jarEvents = 0;
            boolean argv = false;
            for (int i : launch.measurements) {
                MeasurementEvent e = launch.log.event(i);
                String digest = e.contentDigestHex();
                String name = e.dataAsString();
                switch (e.type()) {
                    case CLASSPATH_JAR -> {
                        jarEvents++;
                        jars += digest.equals(r.jars().get(name)) ? 1 : 0;
                    }
                    case JVM -> jvm += digest.equals(r.jvm().get(name)) ? 1 : 0;
                    case CONFIGURATION -> config += digest.equals(r.configuration().get(name)) ? 1 : 0;
                    case COMMAND_LINE -> argv |= r.measuredCommandLine().matches(e.data());
                    default -> {
                    }
                }
            }
            this.allJars = jars == jarEvents && launch.jars().size() == r.jars().size() && jars == r.jars().size();
            this.jarMatches = jars;
            this.jvmMatches = jvm;
            this.configMatches = config;
            this.commandLine = argv;
        }

        boolean betterThan(ReleaseMatch o) {
            if (allJars != o.allJars) {
                return allJars;
            }
            if (jarMatches != o.jarMatches) {
                return jarMatches > o.jarMatches;
            }
            if (jvmMatches != o.jvmMatches) {
                return jvmMatches > o.jvmMatches;
            }
            if (configMatches != o.configMatches) {
                return configMatches > o.configMatches;
            }
            return commandLine && !o.commandLine;
        }
    }

    /** Claims (worst status wins, first reason at that status kept) and reasons in appraisal order. */
    private static final class Findings {
        private final EnumMap<ClaimName, Claim> claims = new EnumMap<>(ClaimName.class);
        private final List<String> reasons = new ArrayList<>();
        private String firstContraindicated;
        private String firstWarning;

        void add(ClaimName name, ClaimStatus status, String check, String reason) {
            Claim current = claims.get(name);
            if (current == null || status.worseThan(current.status())) {
                claims.put(name, new Claim(status, reason));
            }
            if (status == ClaimStatus.CONTRAINDICATED || status == ClaimStatus.WARNING) {
                reasons.add(check + ": " + reason);
                if (status == ClaimStatus.CONTRAINDICATED && firstContraindicated == null) {
                    firstContraindicated = check;
                } else if (status == ClaimStatus.WARNING && firstWarning == null) {
                    firstWarning = check;
                }
            }
        }

        void note(String reason) {
            reasons.add(reason);
        }

        ClaimStatus status(ClaimName name) {
            Claim c = claims.get(name);
            return c == null ? ClaimStatus.NONE : c.status();
        }

        ClaimVector claims() {
            return ClaimVector.of(claims);
        }

        Appraisal result(IntegrityLevel level, String matchedRelease, int policyVersion) {
            String failed = level.atLeast(IntegrityLevel.MEASURED) ? null
                    : firstContraindicated != null ? firstContraindicated : firstWarning;
            return new Appraisal(level, claims(), matchedRelease, reasons, failed, policyVersion);
        }
    }
}
