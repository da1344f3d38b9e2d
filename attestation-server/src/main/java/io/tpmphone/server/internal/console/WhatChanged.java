package io.tpmphone.server.internal.console;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.ClaimName;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What changed between two appraisals of one host: the level, each claim that moved, the reasons the policy gave for
 * the later level, and the measurement log event by event (which jar, which digest, which argument). Events are
 * matched by what they measure (type and name for the JVM, jars and configuration files; type and position among
 * events of that type otherwise), so a changed digest shows as a change of that jar rather than one removal and one
 * addition. Immutable.
 */
public record WhatChanged(long fromSeq, long toSeq, String fromLevel, String toLevel, String toFailedCheck,
                          List<String> toReasons, String fromPolicy, String toPolicy, List<ClaimMove> claims,
                          List<EventChange> events, int unchangedEvents, List<String> notes) {

    /** One claim's status in both appraisals. */
    public record ClaimMove(String claim, String from, String to) {
        public boolean moved() {
            return !from.equals(to);
        }
    }

    /** One measured thing that differs: added, removed, or a different digest (with the arguments that moved). */
    public record EventChange(String kind, String type, String name, String fromDigest, String toDigest,
                              List<TextDiff.Line> arguments) {
    }

    /**
     * Compares appraisal records {@code from} and {@code to} (their canonical detail JSON), with their archived
     * measurement logs when there are (each already checked against its record's {@code eventLogSha256}).
     */
    public static WhatChanged between(long fromSeq, String fromLevel, JsonNode from, Optional<byte[]> fromLog,
                                      long toSeq, String toLevel, JsonNode to, Optional<byte[]> toLog) {
        List<String> notes = new ArrayList<>();
        List<ClaimMove> claims = new ArrayList<>();
        JsonNode fc = from.path("claims");
        JsonNode tc = to.path("claims");
        if (fc.isObject() && tc.isObject()) {
            for (ClaimName c : ClaimName.values()) {
                String a = fc.path(c.key()).asText("—");
                String b = tc.path(c.key()).asText("—");
                claims.add(new ClaimMove(c.key(), a.isEmpty() ? "—" : a, b.isEmpty() ? "—" : b));
            }
        } else {
            notes.add("the claim vector is recorded only by servers since the console (appraisal #"
                    + (fc.isObject() ? toSeq : fromSeq) + " has none)");
        }
        List<String> reasons = new ArrayList<>();
        to.path("reasons").forEach(r -> reasons.add(r.asText()));
        List<EventChange> events = new ArrayList<>();
        int unchanged = 0;
        Optional<MeasurementLog> a = parse(fromSeq, from, fromLog, notes);
        Optional<MeasurementLog> b = parse(toSeq, to, toLog, notes);
        if (a.isPresent() && b.isPresent()) {
            // Within one boot the log only grows: a relaunch (a tampered jar, a new release) appends a launch. What
            // decides the level is the last launch, so the last launches are compared, the baseline on its own.
            List<List<MeasurementEvent>> la = launches(a.get());
            List<List<MeasurementEvent>> lb = launches(b.get());
            if (la.size() != lb.size()) {
                notes.add("the log holds " + (lb.size() - 1) + " launch(es), was " + (la.size() - 1)
                        + ": comparing the last launch of each");
            }
            Map<String, MeasurementEvent> before = keyed(la.get(0));
            before.putAll(keyed(la.get(la.size() - 1)));
            Map<String, MeasurementEvent> after = keyed(lb.get(0));
            after.putAll(keyed(lb.get(lb.size() - 1)));
            for (Map.Entry<String, MeasurementEvent> e : after.entrySet()) {
                MeasurementEvent old = before.get(e.getKey());
                MeasurementEvent now = e.getValue();
                if (old == null) {
                    events.add(new EventChange("added", now.type().name(), name(now), null, now.contentDigestHex(),
                            List.of()));
                } else if (!Arrays.equals(old.contentDigest(), now.contentDigest())
                        || !Arrays.equals(old.data(), now.data())) {
                    List<TextDiff.Line> args = now.type() == EventType.COMMAND_LINE
                            ? TextDiff.lines(argv(old), argv(now)) : List.of();
                    events.add(new EventChange("changed", now.type().name(), name(now), old.contentDigestHex(),
                            now.contentDigestHex(), args));
                } else {
                    unchanged++;
                }
            }
            for (Map.Entry<String, MeasurementEvent> e : before.entrySet()) {
                if (!after.containsKey(e.getKey())) {
                    MeasurementEvent old = e.getValue();
                    events.add(new EventChange("removed", old.type().name(), name(old), old.contentDigestHex(), null,
                            List.of()));
                }
            }
        }
        return new WhatChanged(fromSeq, toSeq, fromLevel, toLevel, to.hasNonNull("failedCheck")
                ? to.get("failedCheck").asText() : null, reasons, from.path("policyVersion").asText("—"),
                to.path("policyVersion").asText("—"), claims, events, unchanged, notes);
    }

    public boolean levelMoved() {
        return !fromLevel.equals(toLevel);
    }

    public boolean policyMoved() {
        return !fromPolicy.equals(toPolicy);
    }

    private static Optional<MeasurementLog> parse(long seq, JsonNode detail, Optional<byte[]> log,
                                                  List<String> notes) {
        if (!detail.hasNonNull("eventLogSha256")) {
            notes.add("appraisal #" + seq + " names no event log (recorded before the console)");
            return Optional.empty();
        }
        if (log.isEmpty()) {
            notes.add("the event log of appraisal #" + seq + " is not in the archive, or does not match its"
                    + " record's hash");
            return Optional.empty();
        }
        try {
            return Optional.of(MeasurementLog.parse(log.get()));
        } catch (MalformedStructureException e) {
            notes.add("the event log of appraisal #" + seq + " does not parse: " + e.getMessage());
            return Optional.empty();
        }
    }

    /**
     * The log cut into the baseline (element 0, the BASELINE event if any) and one list per launch: the events up to
     * and including each LAUNCH, the events after the last LAUNCH (TERMINATED…) going with it. A log without a launch
     * is one launch in progress.
     */
    static List<List<MeasurementEvent>> launches(MeasurementLog log) {
        List<List<MeasurementEvent>> out = new ArrayList<>();
        List<MeasurementEvent> baseline = new ArrayList<>();
        out.add(baseline);
        List<MeasurementEvent> current = new ArrayList<>();
        for (MeasurementEvent e : log.events()) {
            if (e.type() == EventType.BASELINE) {
                baseline.add(e);
                continue;
            }
            current.add(e);
            if (e.type() == EventType.LAUNCH) {
                out.add(current);
                current = new ArrayList<>();
            }
        }
        if (!current.isEmpty()) {
            if (out.size() > 1 && current.stream().noneMatch(e -> e.type() != EventType.TERMINATED)) {
                out.get(out.size() - 1).addAll(current); // the last launch's exit
            } else {
                out.add(current);
            }
        }
        if (out.size() == 1) {
            out.add(new ArrayList<>());
        }
        return out;
    }

    private static Map<String, MeasurementEvent> keyed(List<MeasurementEvent> events) {
        Map<String, MeasurementEvent> out = new LinkedHashMap<>();
        Map<EventType, Integer> occurrences = new HashMap<>();
        for (MeasurementEvent e : events) {
            boolean named = e.type() == EventType.JVM || e.type() == EventType.CLASSPATH_JAR
                    || e.type() == EventType.CONFIGURATION;
            int n = occurrences.merge(e.type(), 1, Integer::sum);
            String key = e.type().name() + (named ? ":" + e.dataAsString() : "#" + n);
            out.putIfAbsent(named && out.containsKey(key) ? key + "#" + n : key, e);
        }
        return out;
    }

    private static String name(MeasurementEvent e) {
        return switch (e.type()) {
            case COMMAND_LINE -> "command line";
            case BASELINE -> "baseline";
            default -> e.dataAsString();
        };
    }

    private static List<String> argv(MeasurementEvent e) {
        return List.of(new String(e.data(), StandardCharsets.UTF_8).split("\0", -1));
    }
}
