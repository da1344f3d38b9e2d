package io.tpmphone.server.internal;

/**
 * Where the verifier keeps the measurement logs it appraised, by SHA-256, so that the console can show what changed
 * between two appraisals event by event. The APPRAISAL record names the log's hash ({@code eventLogSha256}), so an
 * archived log is checked against the hash-chained record before it is shown; the archive itself is not trusted.
 * Archiving is best effort: a failure must not fail the appraisal (implementations log and return).
 */
@FunctionalInterface
public interface EventLogArchive {
    /** Nothing is archived. */
    EventLogArchive NONE = (sha256, log) -> {
    };

    void archive(byte[] sha256, byte[] log);
}
