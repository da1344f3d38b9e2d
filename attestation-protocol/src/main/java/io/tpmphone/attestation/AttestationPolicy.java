package io.tpmphone.attestation;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.internal.Hex;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The appraisal policy: which PCR holds the measurements, what the boot PCRs must hold, which softphone releases are
 * approved, and the nonce and result lifetimes. Immutable and thread-safe.
 *
 * <p>Parsed strictly from JSON by {@link #parse(String)}: unknown fields, duplicate keys, nulls, wrong JSON types
 * (a string where a number is expected, {@code 1.0} for an integer), trailing content and out-of-range values are
 * refused with a {@link PolicyException} naming the field's JSON Pointer. {@link #toJson()} writes the canonical form
 * (fixed field order, maps sorted by key, lower-case hex, no whitespace), which parses back to an equal policy. The
 * format and an example are in {@code docs/attestation.md}.
 */
public final class AttestationPolicy {
    /** The largest policy document accepted, in characters. */
    public static final int MAX_DOCUMENT_LENGTH = 1 << 20;
    /** The largest {@code nonceTtlSeconds}. */
    public static final int MAX_NONCE_TTL_SECONDS = 30;
    /** The largest {@code resultTtlSeconds}. */
    public static final int MAX_RESULT_TTL_SECONDS = 300;
    /** The default {@code keyApprovalTtlSeconds}: how long a keystore approval holds in the host TPM's clock. */
    public static final int DEFAULT_KEY_APPROVAL_TTL_SECONDS = 600;
    /** The bounds of {@code keyApprovalTtlSeconds}. */
    public static final int MIN_KEY_APPROVAL_TTL_SECONDS = 10;
    public static final int MAX_KEY_APPROVAL_TTL_SECONDS = 86_400;

    private static final List<String> TOP_FIELDS = List.of("version", "measurementPcr", "measurementPcrBaselines",
            "pcrBank", "bootPcrs", "bootReferenceValues", "releases", "requireIsolation", "nonceTtlSeconds", "resultTtlSeconds",
            "keyApprovalTtlSeconds");
    private static final List<String> RELEASE_FIELDS = List.of("name", "jvm", "jars", "configuration",
            "commandLine");
    private static final int MAX_NAME_BYTES = MeasurementEvent.MAX_DATA_LENGTH;
    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);

    private final int version;
    private final int measurementPcr;
    private final HashAlgorithm pcrBank;
    private final SortedSet<Integer> bootPcrs;
    private final SortedMap<Integer, List<String>> bootReferenceValues;
    private final List<ApprovedRelease> releases;
    private final boolean requireIsolation;
    private final List<String> measurementPcrBaselines;
    private final int nonceTtlSeconds;
    private final int resultTtlSeconds;
    private final int keyApprovalTtlSeconds;

    private AttestationPolicy(int version, int measurementPcr, HashAlgorithm pcrBank, SortedSet<Integer> bootPcrs,
            SortedMap<Integer, List<String>> bootReferenceValues, List<ApprovedRelease> releases,
            boolean requireIsolation, int nonceTtlSeconds, int resultTtlSeconds, List<String> baselines,
            int keyApprovalTtlSeconds) {
        this.keyApprovalTtlSeconds = keyApprovalTtlSeconds;
        this.measurementPcrBaselines = List.copyOf(baselines);
        this.version = version;
        this.measurementPcr = measurementPcr;
        this.pcrBank = pcrBank;
        this.bootPcrs = Collections.unmodifiableSortedSet(new TreeSet<>(bootPcrs));
        SortedMap<Integer, List<String>> refs = new TreeMap<>();
        bootReferenceValues.forEach((k, v) -> refs.put(k, List.copyOf(v)));
        this.bootReferenceValues = Collections.unmodifiableSortedMap(refs);
        this.releases = List.copyOf(releases);
        this.requireIsolation = requireIsolation;
        this.nonceTtlSeconds = nonceTtlSeconds;
        this.resultTtlSeconds = resultTtlSeconds;
    }

    /** The policy version (positive); results name it. */
    public int version() {
        return version;
    }

    /** The PCR the agent extends measurements into; never a resettable PCR (16, 23). */
    public int measurementPcr() {
        return measurementPcr;
    }

    /** The PCR bank quotes must use: always {@link HashAlgorithm#SHA256}. */
    public HashAlgorithm pcrBank() {
        return pcrBank;
    }

    /** Boot PCRs (0..7) that quotes must include; empty if the policy names none. */
    public SortedSet<Integer> bootPcrs() {
        return bootPcrs;
    }

    /** Boot PCR to its allowed values (lower-case hex); empty if the policy has no boot reference values. */
    public SortedMap<Integer, List<String>> bootReferenceValues() {
        return bootReferenceValues;
    }

    /** The approved releases, in policy order (never empty). */
    public List<ApprovedRelease> releases() {
        return releases;
    }

    /** Whether {@link IntegrityLevel#HARDENED} needs an attested isolated launch. */
    /**
     * The values the measurement PCR may hold when a log begins (its BASELINE): by default only the reset value
     * (all zeros). A log starting anywhere else hides what was measured before it — e.g. a log deleted after an
     * unapproved launch and started anew — so it cannot be MEASURED. Hosts whose boot chain extends the PCR (shim
     * measures its MOK list into PCR 14) list that value.
     */
    public List<String> measurementPcrBaselines() {
        return measurementPcrBaselines;
    }

    public boolean requireIsolation() {
        return requireIsolation;
    }

    /** Lifetime of a nonce the verifier issues (1..30 s). */
    public Duration nonceTtl() {
        return Duration.ofSeconds(nonceTtlSeconds);
    }

    /** Lifetime of a signed attestation result (1..300 s). */
    public Duration resultTtl() {
        return Duration.ofSeconds(resultTtlSeconds);
    }

    /**
     * How long a sealed-keystore approval holds, counted in the host TPM's clock from the quote it was issued for
     * (default 10 min) and within that TPM reset cycle: the longest a host keeps releasing keys after the server stops
     * approving its state, in powered TPM time (docs/keystore.md).
     */
    public Duration keyApprovalTtl() {
        return Duration.ofSeconds(keyApprovalTtlSeconds);
    }

    /** The PCRs a quote must select: the measurement PCR and the boot PCRs, in the policy's bank. */
    public PcrSelection requiredPcrSelection() {
        int[] pcrs = new int[bootPcrs.size() + 1];
        int i = 0;
        for (int p : bootPcrs) {
            pcrs[i++] = p;
        }
        pcrs[i] = measurementPcr;
        return PcrSelection.of(pcrBank, pcrs);
    }

    /**
     * Parses and validates a policy document.
     *
     * @throws PolicyException naming the JSON Pointer of the first bad field and why it is refused
     */
    public static AttestationPolicy parse(String json) throws PolicyException {
        Objects.requireNonNull(json, "json");
        if (json.length() > MAX_DOCUMENT_LENGTH) {
            throw new PolicyException("", "the document has " + json.length() + " characters; at most "
                    + MAX_DOCUMENT_LENGTH + " are accepted");
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new PolicyException("", "not valid JSON (" + e.getOriginalMessage() + " at line "
                    + (e.getLocation() == null ? "?" : e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr()) + ")", e);
        }
        if (root == null || root.isMissingNode()) {
            throw new PolicyException("", "the document is empty; expected a JSON object");
        }
        requireObject(root, "");
        rejectUnknown(root, "", TOP_FIELDS);

        int version = integer(required(root, "", "version"), "/version");
        if (version < 1) {
            throw new PolicyException("/version", "version " + version + " is not a positive integer");
        }
        int pcr = integer(required(root, "", "measurementPcr"), "/measurementPcr");
        if (pcr < 0 || pcr >= PcrSelection.PCR_COUNT) {
            throw new PolicyException("/measurementPcr", "PCR " + pcr + " is outside 0..23");
        }
        if (pcr >= 17 && pcr <= 22) {
            throw new PolicyException("/measurementPcr", "PCR " + pcr + " is a DRTM PCR, reset by a locality-4 "
                    + "late launch: use a PCR that software cannot reset, e.g. one of 8..15");
        }
        if (pcr == 16 || pcr == 23) {
            throw new PolicyException("/measurementPcr", "PCR " + pcr + " is resettable by software ("
                    + (pcr == 16 ? "the debug PCR" : "the application-support PCR")
                    + "): anyone with access to the TPM could reset it and replay approved measurements; "
                    + "use a PCR that software cannot reset, e.g. one of 8..15");
        }
        String bank = text(required(root, "", "pcrBank"), "/pcrBank");
        if (bank.equals("sha1")) {
            throw new PolicyException("/pcrBank", "the sha1 bank is refused: SHA-1 collisions let an attacker "
                    + "forge PCR values; use \"sha256\"");
        }
        if (!bank.equals("sha256")) {
            throw new PolicyException("/pcrBank", "unsupported bank \"" + bank + "\"; use \"sha256\"");
        }

        SortedSet<Integer> bootPcrs = new TreeSet<>();
        JsonNode bootNode = root.get("bootPcrs");
        if (bootNode != null) {
            requireArray(bootNode, "/bootPcrs");
            for (int i = 0; i < bootNode.size(); i++) {
                String at = "/bootPcrs/" + i;
                int p = integer(bootNode.get(i), at);
                if (p < 0 || p > 7) {
                    throw new PolicyException(at, "PCR " + p + " is not a boot PCR (0..7)");
                }
                if (p == pcr) {
                    throw new PolicyException(at, "PCR " + p + " is the measurement PCR; it cannot also be a boot PCR");
                }
                if (!bootPcrs.add(p)) {
                    throw new PolicyException(at, "PCR " + p + " is listed twice");
                }
            }
        }

        SortedMap<Integer, List<String>> refs = new TreeMap<>();
        JsonNode refNode = root.get("bootReferenceValues");
        if (refNode != null) {
            requireObject(refNode, "/bootReferenceValues");
            for (Iterator<Map.Entry<String, JsonNode>> it = refNode.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String at = "/bootReferenceValues/" + escape(e.getKey());
                if (!e.getKey().matches("[0-7]")) {
                    throw new PolicyException(at, "\"" + e.getKey() + "\" is not a boot PCR index 0..7");
                }
                int p = Integer.parseInt(e.getKey());
                if (!bootPcrs.contains(p)) {
                    throw new PolicyException(at, "PCR " + p + " has reference values but is not listed in "
                            + "/bootPcrs; add it there");
                }
                requireArray(e.getValue(), at);
                if (e.getValue().isEmpty()) {
                    throw new PolicyException(at, "no allowed values; list at least one or remove the entry");
                }
                Set<String> values = new LinkedHashSet<>();
                for (int i = 0; i < e.getValue().size(); i++) {
                    String v = sha256(e.getValue().get(i), at + "/" + i);
                    if (!values.add(v)) {
                        throw new PolicyException(at + "/" + i, "value " + v + " is listed twice");
                    }
                }
                refs.put(p, new ArrayList<>(values));
            }
        }

        List<String> baselines = new ArrayList<>();
        JsonNode baseNode = root.get("measurementPcrBaselines");
        if (baseNode == null) {
            baselines.add("00".repeat(32));
        } else {
            requireArray(baseNode, "/measurementPcrBaselines");
            if (baseNode.isEmpty()) {
                throw new PolicyException("/measurementPcrBaselines", "no approved baseline; list at least one (the"
                        + " reset value is 64 zeros) or remove the field");
            }
            for (int i = 0; i < baseNode.size(); i++) {
                String v = sha256(baseNode.get(i), "/measurementPcrBaselines/" + i);
                if (baselines.contains(v)) {
                    throw new PolicyException("/measurementPcrBaselines/" + i, "value " + v + " is listed twice");
                }
                baselines.add(v);
            }
        }

        JsonNode releasesNode = required(root, "", "releases");
        requireArray(releasesNode, "/releases");
        if (releasesNode.isEmpty()) {
            throw new PolicyException("/releases", "no approved release; list at least one");
        }
        List<ApprovedRelease> releases = new ArrayList<>();
        Set<String> names = new LinkedHashSet<>();
        for (int i = 0; i < releasesNode.size(); i++) {
            ApprovedRelease r = release(releasesNode.get(i), "/releases/" + i);
            if (!names.add(r.name())) {
                throw new PolicyException("/releases/" + i + "/name", "release name \"" + r.name()
                        + "\" is used twice; names must be unique");
            }
            releases.add(r);
        }

        boolean requireIsolation = bool(required(root, "", "requireIsolation"), "/requireIsolation");
        int nonceTtl = integer(required(root, "", "nonceTtlSeconds"), "/nonceTtlSeconds");
        if (nonceTtl < 1 || nonceTtl > MAX_NONCE_TTL_SECONDS) {
            throw new PolicyException("/nonceTtlSeconds", nonceTtl + " is outside 1.." + MAX_NONCE_TTL_SECONDS
                    + " seconds: a nonce must be fresh");
        }
        int resultTtl = integer(required(root, "", "resultTtlSeconds"), "/resultTtlSeconds");
        if (resultTtl < 1 || resultTtl > MAX_RESULT_TTL_SECONDS) {
            throw new PolicyException("/resultTtlSeconds", resultTtl + " is outside 1.." + MAX_RESULT_TTL_SECONDS
                    + " seconds (results expire within 5 minutes)");
        }
        int keyApprovalTtl = DEFAULT_KEY_APPROVAL_TTL_SECONDS;
        if (root.has("keyApprovalTtlSeconds")) {
            keyApprovalTtl = integer(root.get("keyApprovalTtlSeconds"), "/keyApprovalTtlSeconds");
            if (keyApprovalTtl < MIN_KEY_APPROVAL_TTL_SECONDS || keyApprovalTtl > MAX_KEY_APPROVAL_TTL_SECONDS) {
                throw new PolicyException("/keyApprovalTtlSeconds", keyApprovalTtl + " is outside "
                        + MIN_KEY_APPROVAL_TTL_SECONDS + ".." + MAX_KEY_APPROVAL_TTL_SECONDS + " seconds");
            }
        }
        return new AttestationPolicy(version, pcr, HashAlgorithm.SHA256, bootPcrs, refs, releases,
                requireIsolation, nonceTtl, resultTtl, baselines, keyApprovalTtl);
    }

    private static ApprovedRelease release(JsonNode node, String at) throws PolicyException {
        requireObject(node, at);
        rejectUnknown(node, at, RELEASE_FIELDS);
        String name = text(required(node, at, "name"), at + "/name");
        if (name.isBlank() || name.length() > 200) {
            throw new PolicyException(at + "/name", "a release name must be 1..200 characters and not blank");
        }
        Map<String, String> jvm = digestMap(required(node, at, "jvm"), at + "/jvm", true);
        Map<String, String> jars = digestMap(required(node, at, "jars"), at + "/jars", true);
        Map<String, String> config = digestMap(required(node, at, "configuration"), at + "/configuration",
                false);
        JsonNode argvNode = required(node, at, "commandLine");
        requireArray(argvNode, at + "/commandLine");
        if (argvNode.isEmpty()) {
            throw new PolicyException(at + "/commandLine", "the command line is empty; give the exact argv");
        }
        List<String> argv = new ArrayList<>();
        for (int i = 0; i < argvNode.size(); i++) {
            String a = text(argvNode.get(i), at + "/commandLine/" + i);
            if (a.indexOf('\0') >= 0) {
                throw new PolicyException(at + "/commandLine/" + i, "an argument cannot contain NUL");
            }
            argv.add(a);
        }
        if (String.join("\0", argv).getBytes(StandardCharsets.UTF_8).length > MeasuredCommandLine.MAX_LENGTH) {
            throw new PolicyException(at + "/commandLine", "the command line is longer than the "
                    + MeasuredCommandLine.MAX_LENGTH + " bytes an event can record");
        }
        return new ApprovedRelease(name, jvm, jars, config, argv);
    }

    private static Map<String, String> digestMap(JsonNode node, String at, boolean nonEmpty)
            throws PolicyException {
        requireObject(node, at);
        if (nonEmpty && node.isEmpty()) {
            throw new PolicyException(at, "empty; list at least one file and its SHA-256 digest");
        }
        Map<String, String> out = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String key = e.getKey();
            String keyAt = at + "/" + escape(key);
            if (key.isEmpty() || key.indexOf('\0') >= 0
                    || key.getBytes(StandardCharsets.UTF_8).length > MAX_NAME_BYTES) {
                throw new PolicyException(keyAt, "a file name must be 1.." + MAX_NAME_BYTES
                        + " bytes without NUL");
            }
            out.put(key, sha256(e.getValue(), keyAt));
        }
        return out;
    }

    private static String sha256(JsonNode node, String at) throws PolicyException {
        String s = text(node, at);
        if (!Hex.isSha256(s)) {
            throw new PolicyException(at, "not a 64-hex-digit SHA-256 digest");
        }
        return s.toLowerCase(Locale.ROOT);
    }

    private static JsonNode required(JsonNode obj, String at, String field) throws PolicyException {
        JsonNode n = obj.get(field);
        if (n == null) {
            throw new PolicyException(at + "/" + field, "required field is missing");
        }
        return n;
    }

    private static void rejectUnknown(JsonNode obj, String at, List<String> allowed) throws PolicyException {
        for (Iterator<String> it = obj.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!allowed.contains(f)) {
                throw new PolicyException(at + "/" + escape(f), "unknown field; allowed fields are " + allowed);
            }
        }
    }

    private static void requireObject(JsonNode n, String at) throws PolicyException {
        if (!n.isObject()) {
            throw new PolicyException(at, "expected a JSON object, found " + describe(n));
        }
    }

    private static void requireArray(JsonNode n, String at) throws PolicyException {
        if (!n.isArray()) {
            throw new PolicyException(at, "expected a JSON array, found " + describe(n));
        }
    }

    private static int integer(JsonNode n, String at) throws PolicyException {
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new PolicyException(at, "expected an integer, found " + describe(n));
        }
        return n.intValue();
    }

    private static boolean bool(JsonNode n, String at) throws PolicyException {
        if (!n.isBoolean()) {
            throw new PolicyException(at, "expected true or false, found " + describe(n));
        }
        return n.booleanValue();
    }

    private static String text(JsonNode n, String at) throws PolicyException {
        if (!n.isTextual()) {
            throw new PolicyException(at, "expected a string, found " + describe(n));
        }
        return n.textValue();
    }

    private static String describe(JsonNode n) {
        if (n.isNull()) {
            return "null";
        }
        if (n.isIntegralNumber()) {
            return n.canConvertToInt() ? "the integer " + n.asText() : "an integer out of range";
        }
        if (n.isNumber()) {
            return "the non-integer number " + n.asText();
        }
        return switch (n.getNodeType()) {
            case STRING -> "a string";
            case BOOLEAN -> "a boolean";
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            default -> n.getNodeType().toString().toLowerCase(Locale.ROOT);
        };
    }

    /** RFC 6901 escaping of one reference token. */
    static String escape(String token) {
        return token.replace("~", "~0").replace("/", "~1");
    }

    /** The canonical JSON form: fixed field order, maps sorted by key, lower-case hex, no whitespace. */
    public String toJson() {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("version", version);
        doc.put("measurementPcr", measurementPcr);
        doc.put("measurementPcrBaselines", measurementPcrBaselines);
        doc.put("pcrBank", pcrBank.tpmName());
        if (!bootPcrs.isEmpty()) {
            doc.put("bootPcrs", new ArrayList<>(bootPcrs));
        }
        if (!bootReferenceValues.isEmpty()) {
            Map<String, Object> refs = new LinkedHashMap<>();
            bootReferenceValues.forEach((k, v) -> refs.put(Integer.toString(k), v));
            doc.put("bootReferenceValues", refs);
        }
        List<Object> rel = new ArrayList<>();
        for (ApprovedRelease r : releases) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", r.name());
            m.put("jvm", r.jvm());
            m.put("jars", r.jars());
            m.put("configuration", r.configuration());
            m.put("commandLine", r.commandLine());
            rel.add(m);
        }
        doc.put("releases", rel);
        doc.put("requireIsolation", requireIsolation);
        doc.put("nonceTtlSeconds", nonceTtlSeconds);
        doc.put("resultTtlSeconds", resultTtlSeconds);
        doc.put("keyApprovalTtlSeconds", keyApprovalTtlSeconds);
        try {
            return MAPPER.writeValueAsString(doc);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize a policy of plain maps and lists", e);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttestationPolicy p && version == p.version && measurementPcr == p.measurementPcr
                && pcrBank == p.pcrBank && bootPcrs.equals(p.bootPcrs)
                && bootReferenceValues.equals(p.bootReferenceValues) && releases.equals(p.releases)
                && requireIsolation == p.requireIsolation && nonceTtlSeconds == p.nonceTtlSeconds
                && resultTtlSeconds == p.resultTtlSeconds && keyApprovalTtlSeconds == p.keyApprovalTtlSeconds
                && measurementPcrBaselines.equals(p.measurementPcrBaselines);
    }

    @Override
    public int hashCode() {
        return Objects.hash(version, measurementPcr, pcrBank, bootPcrs, bootReferenceValues, releases,
                requireIsolation, nonceTtlSeconds, resultTtlSeconds, measurementPcrBaselines,
                keyApprovalTtlSeconds);
    }

    @Override
    public String toString() {
        return "AttestationPolicy[version " + version + ", PCR " + measurementPcr + ", " + releases.size()
                + " release(s)]";
    }
}
