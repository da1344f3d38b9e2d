package io.tpmphone.server.audit;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Writer;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The audit log as OCSF-shaped JSON lines for a SIEM (docs/audit.md, "SIEM export"), one line per record, each
 * checkpoint a line after the record it signs, read forward from a cursor: the records after sequence number
 * {@code after}. Every record line carries, besides its OCSF mapping, the record exactly as hashed ({@code seq},
 * {@code ts_millis}, {@code type}, {@code subject}, {@code outcome}, the canonical {@code detail} text,
 * {@code prev_hash}, {@code hash}) so the SIEM can recompute the chain, and checkpoint lines carry what their
 * signature covers. Where the records read do not continue the chain — a sequence number missing, a record whose
 * {@code prev_hash} is not the previous record's hash, or whose hash does not match its content — a
 * {@code chain_break} line comes first, naming the record. Stateless and thread-safe.
 *
 * <p>Class ids used (OCSF 1.3): appraisals → Device Config State Change (5019, activity Log); call decisions →
 * Network Activity (4001, Open or Refuse) with the Security Control profile; key releases and refusals → API Activity
 * (6003, Read); enrollments → Entity Management (3004, Create) and policy changes → Entity Management (3004, Update);
 * console sign-in and sign-out → Authentication (3002, Logon or Logoff); everything else, checkpoints and chain
 * breaks → Base Event (0, Other).
 */
public final class OcsfExport {
    /** The OCSF schema version the lines follow. */
    public static final String OCSF_VERSION = "1.3.0";
    /** Most records one call writes. */
    public static final int MAX_PAGE = 10_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Where the records come from: {@link #of(AuditLog)} or {@link #of(AuditReader)}. */
    public interface Source {
        List<AuditRecord> records(long fromSeq, int limit) throws AuditException;

        List<AuditCheckpoint> checkpoints() throws AuditException;
    }

    /**
     * What one call wrote; resume with {@code after = nextAfter} and {@code checkpointsAfter = nextCheckpointsAfter}.
     * {@code exportRecords}: how many of the records were themselves exports ({@code AUDIT_EXPORT}).
     */
    public record Result(long records, long checkpoints, long breaks, long nextAfter, long nextCheckpointsAfter,
                         long exportRecords) {
    }

    private OcsfExport() {
    }

    public static Source of(AuditLog log) {
        Objects.requireNonNull(log, "log");
        return new Source() {
            @Override
            public List<AuditRecord> records(long fromSeq, int limit) throws AuditException {
                return log.records(fromSeq, limit);
            }

            @Override
            public List<AuditCheckpoint> checkpoints() throws AuditException {
                return log.checkpoints();
            }
        };
    }

    public static Source of(AuditReader reader) {
        Objects.requireNonNull(reader, "reader");
        return new Source() {
            @Override
            public List<AuditRecord> records(long fromSeq, int limit) throws AuditException {
                return reader.records(fromSeq, limit);
            }

            @Override
            public List<AuditCheckpoint> checkpoints() throws AuditException {
                return reader.checkpoints();
            }
        };
    }

    /**
     * Writes up to {@code limit} (1..{@value #MAX_PAGE}) records after {@code after} (0: from the start) as JSON
     * lines to {@code out} (not closed, not flushed), each checkpoint numbered above {@code checkpointsAfter} after the
     * record it signs — or first, if it signs a record at or before {@code after} (the closing checkpoint of a log
     * that was read to its end before it closed). {@code checkpointsAfter} -1: every checkpoint at a record after
     * {@code after}.
     */
    public static Result write(Source source, long after, long checkpointsAfter, int limit, Writer out)
            throws AuditException, IOException {
        Objects.requireNonNull(source, "source");
        Objects.requireNonNull(out, "out");
        if (after < 0 || checkpointsAfter < -1) {
            throw new IllegalArgumentException("after must be >= 0 and checkpointsAfter >= -1, got " + after + ", "
                    + checkpointsAfter);
        }
        if (limit < 1 || limit > MAX_PAGE) {
            throw new IllegalArgumentException("limit must be 1.." + MAX_PAGE + ", got " + limit);
        }
        byte[] expectedPrev;
        if (after == 0) {
            expectedPrev = AuditEncoding.zeroHash();
        } else {
            List<AuditRecord> at = source.records(after, 1);
            expectedPrev = !at.isEmpty() && at.get(0).seq() == after ? at.get(0).hash() : null;
        }
        List<AuditRecord> records = source.records(after + 1, limit);
        List<AuditCheckpoint> all = source.checkpoints();
        int c = 0;
        if (checkpointsAfter < 0) {
            while (c < all.size() && all.get(c).seq() <= after) {
                c++;
            }
        } else {
            c = (int) Math.min(all.size(), checkpointsAfter);
        }
        long checkpoints = 0;
        while (c < all.size() && all.get(c).seq() <= after) { // signed after we passed their record
            line(out, checkpoint(all.get(c), c + 1));
            checkpoints++;
            c++;
        }
        long expectedSeq = after + 1;
        long breaks = 0;
        long exportRecords = 0;
        for (AuditRecord r : records) {
            String broken = null;
            if (r.seq() != expectedSeq) {
                broken = "records " + expectedSeq + (r.seq() - 1 > expectedSeq ? ".." + (r.seq() - 1) : "")
                        + " are missing: record " + r.seq() + " follows record " + (expectedSeq - 1);
            } else if (expectedPrev == null) {
                broken = "record " + after + ", which the cursor names, is missing";
            } else if (!MessageDigest.isEqual(r.prevHash(), expectedPrev)) {
                broken = "record " + r.seq() + " does not continue the chain: its prev_hash " + r.prevHashHex()
                        + " is not the hash of record " + (r.seq() - 1) + ", " + AuditEncoding.hex(expectedPrev);
            } else if (!MessageDigest.isEqual(r.hash(), AuditEncoding.recordHash(r.seq(),
                    r.timestamp().toEpochMilli(), r.type().name(), r.subject(), r.outcome(), r.detailJson(),
                    r.prevHash()))) {
                broken = "record " + r.seq() + "'s hash does not match its content: it was altered";
            }
            if (broken != null) {
                breaks++;
                line(out, chainBreak(r, broken));
            }
            line(out, record(r));
            if (r.type() == AuditEventType.ADMIN && r.outcome().equals("AUDIT_EXPORT")) {
                exportRecords++;
            }
            while (c < all.size() && all.get(c).seq() <= r.seq()) {
                line(out, checkpoint(all.get(c), c + 1));
                checkpoints++;
                c++;
            }
            expectedSeq = r.seq() + 1;
            expectedPrev = r.hash();
        }
        long last = records.isEmpty() ? after : records.get(records.size() - 1).seq();
        return new Result(records.size(), checkpoints, breaks, last, c, exportRecords);
    }

    private static void line(Writer out, Map<String, Object> line) throws IOException {
        try {
            out.write(JSON.writeValueAsString(line));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("an export line does not serialize", e);
        }
        out.write('\n');
    }

    private static Map<String, Object> base(int categoryUid, int classUid, int activityId, long timeMillis,
                                            long sequence, String message) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("category_uid", categoryUid);
        m.put("class_uid", classUid);
        m.put("activity_id", activityId);
        m.put("type_uid", classUid * 100L + activityId);
        m.put("time", timeMillis);
        m.put("message", message);
        Map<String, Object> product = new LinkedHashMap<>();
        product.put("name", "tpmphone attestation server");
        product.put("vendor_name", "tpmphone");
        Map<String, Object> metadata = new LinkedHashMap<>();
        metadata.put("version", OCSF_VERSION);
        metadata.put("product", product);
        metadata.put("log_name", "tpmphone-audit");
        metadata.put("sequence", sequence);
        m.put("metadata", metadata);
        return m;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> metadata(Map<String, Object> line) {
        return (Map<String, Object>) line.get("metadata");
    }

    static Map<String, Object> record(AuditRecord r) {
        JsonNode d;
        try {
            d = JSON.readTree(r.detailJson());
        } catch (JsonProcessingException e) {
            d = JSON.createObjectNode();
        }
        String type = r.type().name();
        String outcome = r.outcome();
        int category;
        int klass;
        int activity;
        int severity = 1;
        boolean failure = false;
        Map<String, Object> extra = new LinkedHashMap<>();
        switch (r.type()) {
            case APPRAISAL -> {
                category = 5;
                klass = 5019;
                activity = 1;
                severity = switch (outcome) {
                    case "FAILED" -> 4;
                    case "UNATTESTED", "IDENTIFIED" -> 3;
                    default -> 1;
                };
                failure = outcome.equals("FAILED");
                extra.put("device", Map.of("hostname", r.subject()));
            }
            case CALL_DECISION -> {
                category = 4;
                klass = 4001;
                boolean rejected = outcome.equals("REJECT");
                activity = rejected ? 5 : 1;
                severity = rejected ? 3 : 1;
                extra.put("device", Map.of("hostname", r.subject()));
                extra.put("action_id", rejected ? 2 : 1);
                extra.put("action", rejected ? "Denied" : "Allowed");
                extra.put("disposition_id", rejected ? 2 : 1);
                extra.put("disposition", rejected ? "Blocked" : "Allowed");
                String direction = d.path("direction").asText("");
                extra.put("connection_info", Map.of("direction_id", direction.equals("IN") ? 1
                        : direction.equals("OUT") ? 2 : 0));
                if (d.hasNonNull("peer")) {
                    extra.put(direction.equals("IN") ? "src_endpoint" : "dst_endpoint",
                            Map.of("name", d.get("peer").asText()));
                }
            }
            case KEY_RELEASE -> {
                category = 6;
                klass = 6003;
                activity = 2;
                failure = outcome.contains("REFUSED");
                severity = failure ? 3 : 1;
                extra.put("api", Map.of("operation", d.path("operation").asText(outcome)));
                extra.put("device", Map.of("hostname", r.subject()));
            }
            case ENROLLMENT -> {
                category = 3;
                klass = 3004;
                activity = 1;
                extra.put("entity", Map.of("name", r.subject(), "type", "host"));
            }
            case POLICY_CHANGE -> {
                category = 3;
                klass = 3004;
                activity = 3;
                Map<String, Object> entity = new LinkedHashMap<>();
                entity.put("name", "attestation policy");
                entity.put("type", "policy");
                if (d.has("version")) {
                    entity.put("version", d.get("version").asText());
                }
                extra.put("entity", entity);
                extra.put("actor", Map.of("user", Map.of("name", r.subject())));
            }
            default -> {
                if (outcome.equals("CONSOLE_SIGN_IN") || outcome.equals("CONSOLE_SIGN_OUT")
                        || outcome.equals("CONSOLE_SIGN_IN_REFUSED")) {
                    category = 3;
                    klass = 3002;
                    activity = outcome.equals("CONSOLE_SIGN_OUT") ? 2 : 1;
                    failure = outcome.equals("CONSOLE_SIGN_IN_REFUSED");
                    severity = failure ? 3 : 1;
                    extra.put("user", Map.of("name", r.subject()));
                } else {
                    category = 0;
                    klass = 0;
                    activity = 99;
                    failure = r.type() == AuditEventType.REFUSAL;
                    severity = failure ? 2 : 1;
                }
            }
        }
        Map<String, Object> m = base(category, klass, activity, r.timestamp().toEpochMilli(), r.seq(),
                type + " " + r.subject() + " " + outcome);
        metadata(m).put("uid", Long.toString(r.seq()));
        if (klass == 4001) {
            metadata(m).put("profiles", List.of("security_control"));
        }
        m.put("severity_id", severity);
        m.put("status_id", failure ? 2 : 1);
        m.put("status", failure ? "Failure" : "Success");
        m.putAll(extra);
        Map<String, Object> raw = new LinkedHashMap<>();
        raw.put("seq", r.seq());
        raw.put("ts_millis", r.timestamp().toEpochMilli());
        raw.put("type", type);
        raw.put("subject", r.subject());
        raw.put("outcome", outcome);
        raw.put("detail", r.detailJson());
        raw.put("prev_hash", r.prevHashHex());
        raw.put("hash", r.hashHex());
        m.put("unmapped", Map.of("tpmphone_audit_record", raw));
        return m;
    }

    private static Map<String, Object> checkpoint(AuditCheckpoint c, int n) {
        Map<String, Object> m = base(0, 0, 99, c.timestamp().toEpochMilli(), c.seq(), "audit checkpoint " + n
                + " signs record " + c.seq());
        m.put("severity_id", 1);
        m.put("status_id", 1);
        m.put("status", "Success");
        Map<String, Object> raw = new LinkedHashMap<>();
        raw.put("n", n);
        raw.put("seq", c.seq());
        raw.put("hash", c.hashHex());
        raw.put("ts_millis", c.timestamp().toEpochMilli());
        raw.put("key_id", c.keyId());
        raw.put("signature", Base64.getEncoder().encodeToString(c.signature()));
        raw.put("version", c.version());
        if (c.chained()) {
            raw.put("every", c.every());
            raw.put("max_unsigned_millis", c.maxUnsignedMillis());
            raw.put("closed", c.closed());
            raw.put("prev_digest", AuditEncoding.hex(c.prevDigest()));
        }
        m.put("unmapped", Map.of("tpmphone_audit_checkpoint", raw));
        return m;
    }

    private static Map<String, Object> chainBreak(AuditRecord r, String reason) {
        Map<String, Object> m = base(0, 0, 99, r.timestamp().toEpochMilli(), r.seq(), "audit chain broken at"
                + " record " + r.seq() + ": " + reason);
        m.put("severity_id", 5);
        m.put("status_id", 2);
        m.put("status", "Failure");
        Map<String, Object> raw = new LinkedHashMap<>();
        raw.put("seq", r.seq());
        raw.put("reason", reason);
        m.put("unmapped", Map.of("tpmphone_audit_chain_break", raw));
        return m;
    }
}
