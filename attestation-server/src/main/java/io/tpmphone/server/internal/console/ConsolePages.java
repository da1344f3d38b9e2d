package io.tpmphone.server.internal.console;

import java.util.List;

/**
 * What each console template renders: plain immutable values, built by {@link ConsoleHandler} and escaped by the
 * templates (jte, HTML content type: every {@code ${…}} is escaped for where it stands). Strings here may hold
 * peer-controlled text (host names, URIs, reasons); nothing here is ever output unescaped.
 */
public final class ConsolePages {
    private ConsolePages() {
    }

    /** The frame of every page: title, active tab, who is signed in (null: nobody), the CSRF token of forms. */
    public record Frame(String title, String active, String role, String csrf, List<String> notices) {
        public boolean signedIn() {
            return role != null;
        }
    }

    /** One choice of a select. */
    public record Option(String value, String label, boolean selected) {
    }

    /** One claim of a fleet row, with a one-letter abbreviation of its name. */
    public record ClaimCell(String name, String status, String abbreviation) {
    }

    public record FleetRow(String name, String url, String level, String failedCheck, List<ClaimCell> claims,
                           String lastAt, boolean stale, String release, String policyVersion) {
    }

    public record FleetPage(List<FleetRow> rows, String nextUrl, long hostCount, String staleAfter,
                            List<Option> levels, List<Option> claims, List<Option> statuses, String release,
                            String policy, boolean staleOnly) {
    }

    /** One record of a host's timeline; {@code levelChanged}: an appraisal whose level differs from the one before. */
    public record TimelineEntry(long seq, String at, String type, String outcome, String summary, String callUrl,
                                String diffUrl, boolean levelChanged) {
    }

    public record HostPage(String name, String level, String lastAt, String release, String policyVersion,
                           List<TimelineEntry> entries, String nextUrl) {
    }

    /**
     * One side's decision of a call, from its CALL_DECISION record. {@code established}, {@code evidenceSha256} and
     * {@code resultAge} are what the agent reported (issue 14) or {@link #NOT_REPORTED}.
     */
    public record CallSide(long seq, String recordedAt, String host, String hostUrl, String callId, String callUrl,
                           String direction, String decision, String peer, String peerLevel, String requiredLevel,
                           String established, String evidenceSha256, String resultAge, String hostTime, String count,
                           String reason, String message) {
        /** What a field the host's agent did not send shows. */
        public static final String NOT_REPORTED = "not reported";

        /** True if {@code value} is what the host's agent reported, not {@link #NOT_REPORTED}. */
        public static boolean reported(String value) {
            return !NOT_REPORTED.equals(value);
        }
    }

    public record PolicyPage(List<PolicyVersions.Version> versions, String nextUrl, Integer shown, String document,
                             Integer diffFrom, List<TextDiff.Line> diff, boolean canChange) {
    }

    public record AuditRow(long seq, String at, String type, String subject, String outcome, String detail) {
    }

    public record AuditPage(long headSeq, String headHash, String checkpoint, String afterCheckpoint,
                            String signedHead, List<Option> types, String subject, String query, String searchNote,
                            List<AuditRow> rows, String nextUrl) {
    }
}
