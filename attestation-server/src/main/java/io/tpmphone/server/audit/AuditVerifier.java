package io.tpmphone.server.audit;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.StringReader;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.interfaces.ECPublicKey;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import java.util.Set;

/**
 * Offline verification of an audit database or JSON export: recomputes every record hash and prev link, checks
 * that seq runs 1..n without gaps, checks every checkpoint against the record at its seq and, given the public
 * key, its signature, and checks that the checkpoints cover the log as docs/audit.md promises: chained to each
 * other, one wherever the signed interval requires it, and a closing one at the head of a closed log
 * ({@link VerifyOptions}). Returns a {@link VerificationReport} naming the first broken record; throws
 * {@link AuditException} only when the input cannot be read at all (missing file, not an audit database, malformed
 * export).
 *
 * <p>Opening a database here is read-only: it never creates, migrates or writes it, and may run while an
 * {@link AuditLog} appends (it verifies one consistent snapshot). Stateless and thread-safe.
 */
public final class AuditVerifier {
    /** The checkpoint signature algorithm. */
    public static final String SIGNATURE_ALGORITHM = "SHA256withECDSA";
    private static final Duration BUSY_TIMEOUT = Duration.ofSeconds(10);
    /** Reads the head and checkpoints as trees, refusing duplicate names (the parser's own check is off). */
    private static final com.fasterxml.jackson.databind.ObjectReader TREES = CanonicalJson.MAPPER.reader()
            .with(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);
    private static final Set<String> RECORD_FIELDS = Set.of("seq", "timestamp", "type", "subject", "outcome",
            "detail", "prevHash", "hash");
    private static final Set<String> CHECKPOINT_FIELDS = Set.of("seq", "hash", "timestamp", "keyId", "signature");
    private static final Set<String> HEAD_FIELDS = Set.of("seq", "hash", "timestamp", "checkpoints",
            "checkpointDigest", "refreshMillis", "closed", "keyId", "signature");
    private static final Set<String> CHECKPOINT_V1_FIELDS = Set.of("version", "seq", "hash", "timestamp", "keyId",
            "signature");
    private static final Set<String> CHECKPOINT_V2_FIELDS = Set.of("version", "seq", "hash", "timestamp", "keyId",
            "signature", "every", "maxUnsignedMillis", "closed", "prevDigest");

    private AuditVerifier() {
    }

    /**
     * Verifies the database at {@code databaseFile}, read-only, as a closed log ({@link VerifyOptions#closed()}).
     *
     * @param checkpointKey the checkpoint signer's public key; without it signatures are not checked
     * @throws AuditException {@code STORAGE} if the file is missing, unreadable or not an audit database
     */
    public static VerificationReport verify(Path databaseFile, Optional<PublicKey> checkpointKey)
            throws AuditException {
        return verify(databaseFile, checkpointKey, VerifyOptions.closed());
    }

    /**
     * Verifies the database at {@code databaseFile}, read-only, with the given coverage rules.
     *
     * @param checkpointKey the checkpoint signer's public key; without it signatures are not checked
     * @throws AuditException {@code STORAGE} if the file is missing, unreadable or not an audit database
     */
    public static VerificationReport verify(Path databaseFile, Optional<PublicKey> checkpointKey,
            VerifyOptions options) throws AuditException {
        Objects.requireNonNull(databaseFile, "databaseFile");
        Objects.requireNonNull(checkpointKey, "checkpointKey");
        Objects.requireNonNull(options, "options");
        try (Connection connection = AuditDatabase.openReadOnly(databaseFile, BUSY_TIMEOUT)) {
            return verify(connection, databaseFile.toString(), checkpointKey, options);
        } catch (SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot read audit database " + databaseFile
                    + ": " + e.getMessage(), e);
        }
    }

    /**
     * Verifies the shared audit log of several server instances in the PostgreSQL database at {@code jdbcUrl}
     * ({@code jdbc:postgresql://HOST:PORT/DB?user=USER}; the password as the driver finds it, e.g. {@code ~/.pgpass}),
     * as {@link #verify(Path, Optional, VerifyOptions)} verifies a file: in one read-only snapshot (repeatable read),
     * so a running cluster may go on appending.
     */
    public static VerificationReport verify(String jdbcUrl, Optional<PublicKey> checkpointKey, VerifyOptions options)
            throws AuditException {
        Objects.requireNonNull(jdbcUrl, "jdbcUrl");
        Objects.requireNonNull(checkpointKey, "checkpointKey");
        Objects.requireNonNull(options, "options");
        if (!jdbcUrl.startsWith("jdbc:postgresql://")) {
            throw new IllegalArgumentException("the audit database URL must be jdbc:postgresql://HOST:PORT/DB?user=USER");
        }
        int q = jdbcUrl.indexOf('?');
        String name = q < 0 ? jdbcUrl : jdbcUrl.substring(0, q);
        try (Connection connection = java.sql.DriverManager.getConnection(jdbcUrl)) {
            connection.setReadOnly(true);
            connection.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
            return verify(connection, name, checkpointKey, options);
        } catch (SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot read the audit log on " + name + ": "
                    + e.getMessage(), e);
        }
    }

    private static VerificationReport verify(Connection connection, String name, Optional<PublicKey> checkpointKey,
            VerifyOptions options) throws SQLException, AuditException {
        connection.setAutoCommit(false); // one snapshot: checkpoints and records
        try {
            List<AuditCheckpoint> checkpoints = AuditDatabase.checkpoints(connection);
            AuditHead head = AuditDatabase.head(connection).orElse(null);
            ChainChecker checker = new ChainChecker(checkpointKey, checkpoints, head, options);
            try (PreparedStatement query = connection.prepareStatement("SELECT "
                    + AuditDatabase.rawRecordColumns(connection) + " FROM audit_record ORDER BY seq")) {
                query.setFetchSize(1000);
                try (ResultSet rows = query.executeQuery()) {
                    while (rows.next() && checker.accept(rows.getLong(1), rows.getLong(2), nonNull(rows.getBytes(3)),
                            nonNull(rows.getBytes(4)), nonNull(rows.getBytes(5)), nonNull(rows.getBytes(6)),
                            rows.getBytes(7), rows.getBytes(8))) {
                        // accept() does the work
                    }
                }
            }
            return checker.finish(name, checkpoints, head, -1);
        } finally {
            connection.rollback();
        }
    }

    /**
     * Verifies a JSON export ({@link AuditLog#exportJson}, format in {@code docs/audit.md}) as a closed log. Streams
     * records; keeps 40 bytes per record in memory only if the checkpoints come after the records.
     *
     * @throws AuditException {@code MALFORMED_EXPORT} naming the place if the document is not a well-formed export
     */
    public static VerificationReport verifyExport(InputStream json, Optional<PublicKey> checkpointKey)
            throws AuditException {
        return verifyExport(json, checkpointKey, VerifyOptions.closed());
    }

    /**
     * Verifies a JSON export with the given coverage rules; an export of a running server's log is open.
     *
     * @throws AuditException {@code MALFORMED_EXPORT} naming the place if the document is not a well-formed export
     */
    public static VerificationReport verifyExport(InputStream json, Optional<PublicKey> checkpointKey,
            VerifyOptions options) throws AuditException {
        Objects.requireNonNull(json, "json");
        Objects.requireNonNull(checkpointKey, "checkpointKey");
        Objects.requireNonNull(options, "options");
        try (JsonParser parser = CanonicalJson.MAPPER.getFactory().createParser(json)) {
            // Duplicate names are refused by this class itself, not by the parser's check, which keeps a hash set
            // per object: a tenth of the time on a million records (the head and checkpoints are read by TREES,
            // which refuses them; the records and the top level by their readers).
            parser.disable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
            return verifyExport(parser, checkpointKey, options);
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            throw new AuditException(AuditException.Code.MALFORMED_EXPORT, "audit export is not valid JSON"
                    + (at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr()) + ": "
                    + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot read the audit export: " + e.getMessage(),
                    e);
        }
    }

    private static VerificationReport verifyExport(JsonParser parser, Optional<PublicKey> key,
            VerifyOptions options) throws IOException, AuditException {
        if (parser.nextToken() != JsonToken.START_OBJECT) {
            throw malformed("audit export must be a JSON object with \"format\": \"" + AuditExport.FORMAT + "\"");
        }
        List<AuditCheckpoint> checkpoints = null;
        AuditHead head = null;
        ChainChecker checker = null;
        String format = null;
        String checkpointEncoding = null;
        long version = 1;
        long declaredCount = -1;
        boolean publicKeySeen = false;
        java.util.Set<String> fieldsSeen = new java.util.HashSet<>();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String field = parser.currentName();
            // Checked here as well as by the parser: the parser's duplicate check is off inside the records array.
            if (!fieldsSeen.add(field)) {
                throw malformed("audit export is not valid JSON: duplicate field '" + field + "'");
            }
            JsonToken value = parser.nextToken();
            switch (field) {
                case "format" -> format = text(parser, value, field);
                case "version" -> {
                    if (value != JsonToken.VALUE_NUMBER_INT || parser.getLongValue() < 1
                            || parser.getLongValue() > AuditExport.VERSION) {
                        throw malformed("audit export version " + parser.getText() + " is not supported (expected "
                                + "1.." + AuditExport.VERSION + ")");
                    }
                    version = parser.getLongValue();
                }
                case "hashAlgorithm" -> expect(parser, value, field, "SHA-256");
                case "recordEncoding" -> expect(parser, value, field, AuditEncoding.RECORD_TAG);
                case "checkpointEncoding" -> {
                    checkpointEncoding = text(parser, value, field);
                    if (!checkpointEncoding.equals(AuditEncoding.CHECKPOINT_TAG)
                            && !checkpointEncoding.equals(AuditEncoding.CHECKPOINT_V2_TAG)
                            && !checkpointEncoding.equals(AuditEncoding.CHECKPOINT_V3_TAG)) {
                        throw malformed("audit export field \"checkpointEncoding\" is \"" + checkpointEncoding
                                + "\"; this verifier supports only \"" + AuditEncoding.CHECKPOINT_TAG + "\", \""
                                + AuditEncoding.CHECKPOINT_V2_TAG + "\" and \"" + AuditEncoding.CHECKPOINT_V3_TAG + "\"");
                    }
                }
                case "signatureAlgorithm" -> expect(parser, value, field, SIGNATURE_ALGORITHM);
                case "publicKey" -> {
                    if (publicKeySeen) {
                        throw malformed("audit export has two \"publicKey\" fields");
                    }
                    publicKeySeen = true;
                    try {
                        // Carried for convenience (the in-browser verifier); never trusted here: the key to check
                        // with is the one the caller gives.
                        publicKeyFromPem(text(parser, value, field));
                    } catch (IllegalArgumentException e) {
                        throw malformed("audit export field \"publicKey\" is not an ECDSA public key in PEM: "
                                + e.getMessage(), e);
                    }
                }
                case "recordCount" -> {
                    if (value != JsonToken.VALUE_NUMBER_INT || parser.getLongValue() < 0) {
                        throw malformed("audit export field \"recordCount\" must be a non-negative integer");
                    }
                    declaredCount = parser.getLongValue();
                }
                case "checkpoints" -> {
                    if (checkpoints != null) {
                        throw malformed("audit export has two \"checkpoints\" arrays");
                    }
                    checkpoints = readCheckpoints(parser, value);
                }
                case "head" -> {
                    if (head != null) {
                        throw malformed("audit export has two \"head\" objects");
                    }
                    if (checker != null) {
                        throw malformed("audit export field \"head\" must come before \"records\"");
                    }
                    head = readHead(parser, value);
                }
                case "records" -> {
                    if (checker != null) {
                        throw malformed("audit export has two \"records\" arrays");
                    }
                    checker = new ChainChecker(key, checkpoints, head, options);
                    readRecords(parser, value, checker);
                }
                default -> throw malformed("audit export has an unknown field \"" + field + "\"");
            }
        }
        if (parser.currentToken() != JsonToken.END_OBJECT || parser.nextToken() != null) {
            throw malformed("audit export has data after its JSON object");
        }
        if (!AuditExport.FORMAT.equals(format)) {
            throw malformed("audit export must have \"format\": \"" + AuditExport.FORMAT + "\", got "
                    + (format == null ? "none" : "\"" + format + "\""));
        }
        if (checker == null) {
            throw malformed("audit export has no \"records\" array");
        }
        if (checkpoints == null) {
            throw malformed("audit export has no \"checkpoints\" array");
        }
        if (version < 4 && publicKeySeen) {
            throw malformed("audit export version " + version + " cannot hold a \"publicKey\" (since version 4)");
        }
        String expectedEncoding = version == 1 ? AuditEncoding.CHECKPOINT_TAG
                : version == 2 ? AuditEncoding.CHECKPOINT_V2_TAG : AuditEncoding.CHECKPOINT_V3_TAG;
        if (checkpointEncoding != null && !checkpointEncoding.equals(expectedEncoding)) {
            throw malformed("audit export version " + version + " must have \"checkpointEncoding\": \""
                    + expectedEncoding + "\", not \"" + checkpointEncoding + "\"");
        }
        if (version == 1 && checkpoints.stream().anyMatch(c -> c.version() != 1)) {
            throw malformed("audit export version 1 cannot hold v2 checkpoints");
        }
        if (version < 3 && (head != null || checkpoints.stream().anyMatch(c -> c.version() == 3))) {
            throw malformed("audit export version " + version + " cannot hold a \"head\" or v3 checkpoints (since "
                    + "version 3)");
        }
        return checker.finish("export", checkpoints, head, declaredCount);
    }

    private static AuditHead readHead(JsonParser parser, JsonToken token) throws IOException, AuditException {
        String where = "audit export head";
        if (token != JsonToken.START_OBJECT) {
            throw malformed(where + " must be a JSON object");
        }
        JsonNode node = TREES.readTree(parser);
        requireFields(node, HEAD_FIELDS, where);
        byte[] signature;
        try {
            signature = Base64.getDecoder().decode(string(node, "signature", where));
        } catch (IllegalArgumentException e) {
            throw malformed(where + ": \"signature\" is not base64", e);
        }
        long seq = integer(node, "seq", where);
        long checkpoints = integer(node, "checkpoints", where);
        long refresh = integer(node, "refreshMillis", where);
        if (seq < 0 || checkpoints < 0 || refresh < 1) {
            throw malformed(where + ": \"seq\" and \"checkpoints\" must be >= 0, \"refreshMillis\" >= 1");
        }
        byte[] hash = hexField(node, "hash", where);
        byte[] digest = hexField(node, "checkpointDigest", where);
        if (hash.length != AuditEncoding.HASH_LENGTH || digest.length != AuditEncoding.HASH_LENGTH) {
            throw malformed(where + ": \"hash\" and \"checkpointDigest\" must be " + AuditEncoding.HASH_LENGTH
                    + " bytes");
        }
        JsonNode closed = node.get("closed");
        if (!closed.isBoolean()) {
            throw malformed(where + ": \"closed\" must be true or false");
        }
        return new AuditHead(seq, hash, instant(node, where), checkpoints, digest, refresh, closed.booleanValue(),
                string(node, "keyId", where), signature);
    }

    private static List<AuditCheckpoint> readCheckpoints(JsonParser parser, JsonToken token)
            throws IOException, AuditException {
        if (token != JsonToken.START_ARRAY) {
            throw malformed("audit export field \"checkpoints\" must be an array");
        }
        List<AuditCheckpoint> checkpoints = new ArrayList<>();
        while (parser.nextToken() != JsonToken.END_ARRAY) {
            JsonNode node = TREES.readTree(parser);
            String where = "audit export checkpoint #" + (checkpoints.size() + 1);
            if (node == null || !node.isObject()) {
                throw malformed(where + " is not a JSON object");
            }
            // No "version": an export of format version 1, whose checkpoints are all v1.
            long checkpointVersion = node.has("version") ? integer(node, "version", where) : 1;
            if (checkpointVersion < 1 || checkpointVersion > 3) {
                throw malformed(where + ": checkpoint \"version\" must be 1, 2 or 3, got " + checkpointVersion);
            }
            requireFields(node, !node.has("version") ? CHECKPOINT_FIELDS
                    : checkpointVersion == 1 ? CHECKPOINT_V1_FIELDS : CHECKPOINT_V2_FIELDS, where);
            long seq = integer(node, "seq", where);
            byte[] signature;
            try {
                signature = Base64.getDecoder().decode(string(node, "signature", where));
            } catch (IllegalArgumentException e) {
                throw malformed(where + " (seq " + seq + "): \"signature\" is not base64", e);
            }
            if (checkpointVersion == 1) {
                checkpoints.add(new AuditCheckpoint(seq, hexField(node, "hash", where), instant(node, where),
                        string(node, "keyId", where), signature));
            } else {
                long every = integer(node, "every", where);
                if (every < 1 || every > Integer.MAX_VALUE) {
                    throw malformed(where + " (seq " + seq + "): \"every\" must be 1.." + Integer.MAX_VALUE);
                }
                JsonNode closed = node.get("closed");
                if (!closed.isBoolean()) {
                    throw malformed(where + " (seq " + seq + "): \"closed\" must be true or false");
                }
                checkpoints.add(new AuditCheckpoint((int) checkpointVersion, seq, hexField(node, "hash", where),
                        instant(node, where),
                        string(node, "keyId", where), signature, (int) every, integer(node, "maxUnsignedMillis",
                        where), closed.booleanValue(), hexField(node, "prevDigest", where)));
            }
        }
        return checkpoints;
    }

    /** The record fields in a fixed order: slots of the streaming reader. */
    private static final String[] RECORD_SLOTS = {"seq", "timestamp", "type", "subject", "outcome", "detail",
            "prevHash", "hash"};

    private static int recordSlot(String name) {
        return switch (name) {
            case "seq" -> 0;
            case "timestamp" -> 1;
            case "type" -> 2;
            case "subject" -> 3;
            case "outcome" -> 4;
            case "detail" -> 5;
            case "prevHash" -> 6;
            case "hash" -> 7;
            default -> -1;
        };
    }

    /**
     * Streams the records: each one's fields read from the parser's tokens into slots (no tree per record, which
     * dominated verifying a million records), then checked in the order and with the messages of the tree-based
     * checks ({@link #requireFields}, {@link #integer}, {@link #string}, {@link #hexField}, {@link #instant}).
     */
    private static void readRecords(JsonParser parser, JsonToken token, ChainChecker checker)
            throws IOException, AuditException {
        if (token != JsonToken.START_ARRAY) {
            throw malformed("audit export field \"records\" must be an array");
        }
        long index = 0;
        JsonToken[] kinds = new JsonToken[RECORD_SLOTS.length];
        String[] texts = new String[RECORD_SLOTS.length];
        JsonToken element;
        while ((element = parser.nextToken()) != JsonToken.END_ARRAY) {
            index++;
            if (!checker.intact()) {
                parser.skipChildren(); // stop at the first broken record, but still read the whole document
                continue;
            }
            if (element != JsonToken.START_OBJECT) {
                throw malformed("audit export record #" + index + " is not a JSON object");
            }
            java.util.Arrays.fill(kinds, null);
            java.util.Arrays.fill(texts, null);
            long seq = 0;
            String unknown = null;
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String name = parser.currentName();
                JsonToken value = parser.nextToken();
                int slot = recordSlot(name);
                if (slot < 0) {
                    unknown = unknown == null ? name : unknown;
                } else if (kinds[slot] != null) {
                    throw malformed("audit export is not valid JSON: duplicate field '" + name + "' in record #"
                            + index);
                } else {
                    kinds[slot] = value;
                    if (value == JsonToken.VALUE_STRING) {
                        texts[slot] = parser.getText();
                    } else if (slot == 0 && value == JsonToken.VALUE_NUMBER_INT
                            && parser.getNumberType() != JsonParser.NumberType.BIG_INTEGER) {
                        seq = parser.getLongValue();
                    } else if (slot == 0 && value == JsonToken.VALUE_NUMBER_INT) {
                        kinds[slot] = JsonToken.VALUE_EMBEDDED_OBJECT; // an integer beyond a long: not one
                    }
                }
                parser.skipChildren();
            }
            if (unknown != null) {
                throw malformed("audit export record #" + index + " has an unknown field \"" + unknown + "\"");
            }
            for (String name : RECORD_FIELDS) {
                if (kinds[recordSlot(name)] == null) {
                    throw malformed("audit export record #" + index + " has no \"" + name + "\"");
                }
            }
            if (kinds[0] != JsonToken.VALUE_NUMBER_INT) {
                throw malformed("audit export record #" + index + ": \"seq\" must be an integer");
            }
            // Where a problem is, named only when there is one: no message text built per record.
            Where where = new Where(index, seq);
            long millis = millis(slotText(kinds, texts, 1, where), where);
            byte[] type = slotText(kinds, texts, 2, where).getBytes(StandardCharsets.UTF_8);
            byte[] subject = slotText(kinds, texts, 3, where).getBytes(StandardCharsets.UTF_8);
            byte[] outcome = slotText(kinds, texts, 4, where).getBytes(StandardCharsets.UTF_8);
            byte[] detail = slotText(kinds, texts, 5, where).getBytes(StandardCharsets.UTF_8);
            checker.accept(seq, millis, type, subject, outcome, detail, slotHex(kinds, texts, 6, where),
                    slotHex(kinds, texts, 7, where));
        }
    }

    /** A record's place in the export, as messages name it: {@code audit export record #5 (seq 5)}. */
    private record Where(long index, long seq) {
        @Override
        public String toString() {
            return "audit export record #" + index + " (seq " + seq + ")";
        }
    }

    private static String slotText(JsonToken[] kinds, String[] texts, int slot, Where where) throws AuditException {
        if (kinds[slot] != JsonToken.VALUE_STRING) {
            throw malformed(where + ": \"" + RECORD_SLOTS[slot] + "\" must be a string");
        }
        return texts[slot];
    }

    private static byte[] slotHex(JsonToken[] kinds, String[] texts, int slot, Where where) throws AuditException {
        String text = slotText(kinds, texts, slot, where);
        byte[] bytes = hex(text);
        if (bytes == null) {
            throw malformed(where + ": \"" + RECORD_SLOTS[slot] + "\" is not hex");
        }
        return bytes;
    }

    /** Lower- or upper-case hex as {@link java.util.HexFormat#parseHex} reads it; null if it is not. */
    private static byte[] hex(String text) {
        int n = text.length();
        if ((n & 1) != 0) {
            return null;
        }
        byte[] out = new byte[n / 2];
        for (int i = 0; i < out.length; i++) {
            int hi = Character.digit(text.charAt(2 * i), 16);
            int lo = Character.digit(text.charAt(2 * i + 1), 16);
            // Character.digit also reads non-ASCII digits (e.g. fullwidth): HexFormat does not.
            if (hi < 0 || lo < 0 || text.charAt(2 * i) > 'f' || text.charAt(2 * i + 1) > 'f') {
                return null;
            }
            out[i] = (byte) (hi << 4 | lo);
        }
        return out;
    }

    /**
     * Epoch milliseconds of a timestamp: the writer's form ({@code 2025-01-31T12:00:00.000Z}) read directly, anything
     * else (or a date that does not exist) by {@link Instant#parse} with its checks and messages.
     */
    static long millis(String text, Object where) throws AuditException {
        if (text.length() == 24 && text.charAt(4) == '-' && text.charAt(7) == '-' && text.charAt(10) == 'T'
                && text.charAt(13) == ':' && text.charAt(16) == ':' && text.charAt(19) == '.'
                && text.charAt(23) == 'Z') {
            int year = digits(text, 0, 4);
            int month = digits(text, 5, 7);
            int day = digits(text, 8, 10);
            int hour = digits(text, 11, 13);
            int minute = digits(text, 14, 16);
            int second = digits(text, 17, 19);
            int milli = digits(text, 20, 23);
            if (year >= 0 && month >= 1 && month <= 12 && day >= 1 && hour >= 0 && hour <= 23 && minute >= 0
                    && minute <= 59 && second >= 0 && second <= 59 && milli >= 0
                    && day <= java.time.YearMonth.of(year, month).lengthOfMonth()) {
                long epochDay = java.time.LocalDate.of(year, month, day).toEpochDay();
                return ((epochDay * 24 + hour) * 60 + minute) * 60_000L + second * 1000L + milli;
            }
        }
        return instant(text, String.valueOf(where)).toEpochMilli();
    }

    /** The decimal number in text[from, to), or -1 if a character is not an ASCII digit. */
    private static int digits(String text, int from, int to) {
        int n = 0;
        for (int i = from; i < to; i++) {
            char c = text.charAt(i);
            if (c < '0' || c > '9') {
                return -1;
            }
            n = n * 10 + (c - '0');
        }
        return n;
    }

    /**
     * Reads a public key from PEM: {@code PUBLIC KEY} (X.509 SubjectPublicKeyInfo) or {@code CERTIFICATE} (its key),
     * the first PEM object in {@code pem}; parsed by Bouncy Castle's {@link PEMParser}.
     *
     * @throws IllegalArgumentException saying what is wrong with the text
     */
    public static PublicKey publicKeyFromPem(String pem) {
        Objects.requireNonNull(pem, "pem");
        Object object;
        try (PEMParser parser = new PEMParser(new StringReader(pem))) {
            object = parser.readObject();
        } catch (IOException e) { // also a PEMException for a damaged block
            throw new IllegalArgumentException("not readable as PEM: " + e.getMessage(), e);
        }
        PublicKey key;
        try {
            if (object instanceof SubjectPublicKeyInfo spki) {
                key = new JcaPEMKeyConverter().getPublicKey(spki);
            } else if (object instanceof X509CertificateHolder certificate) {
                key = new JcaX509CertificateConverter().getCertificate(certificate).getPublicKey();
            } else {
                throw new IllegalArgumentException("expected a PEM \"PUBLIC KEY\" or \"CERTIFICATE\" block, found "
                        + (object == null ? "none" : "a " + object.getClass().getSimpleName()));
            }
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException("not a public key or certificate in PEM: " + e.getMessage(), e);
        }
        if (!(key instanceof ECPublicKey)) {
            throw new IllegalArgumentException("the PEM holds a " + key.getAlgorithm() + " key; audit checkpoints are"
                    + " signed with ECDSA P-256: give the server's result-signing key or certificate");
        }
        return key;
    }

    /** The PEM {@code PUBLIC KEY} text of {@code key}, for handing the checkpoint key to auditors. */
    public static String publicKeyPem(PublicKey key) {
        Objects.requireNonNull(key, "key");
        StringWriter out = new StringWriter();
        try (JcaPEMWriter w = new JcaPEMWriter(out)) {
            w.writeObject(key);
        } catch (IOException e) {
            throw new IllegalStateException("writing PEM to a string failed", e);
        }
        return out.toString();
    }

    private static byte[] nonNull(byte[] bytes) {
        return bytes == null ? new byte[0] : bytes;
    }

    private static void requireFields(JsonNode node, Set<String> fields, String where) throws AuditException {
        if (node == null || !node.isObject()) {
            throw malformed(where + " is not a JSON object");
        }
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!fields.contains(name)) {
                throw malformed(where + " has an unknown field \"" + name + "\"");
            }
        }
        for (String name : fields) {
            if (!node.has(name)) {
                throw malformed(where + " has no \"" + name + "\"");
            }
        }
    }

    private static long integer(JsonNode node, String field, String where) throws AuditException {
        JsonNode value = node.get(field);
        if (!value.isIntegralNumber() || !value.canConvertToLong()) {
            throw malformed(where + ": \"" + field + "\" must be an integer");
        }
        return value.longValue();
    }

    private static String string(JsonNode node, String field, String where) throws AuditException {
        JsonNode value = node.get(field);
        if (!value.isTextual()) {
            throw malformed(where + ": \"" + field + "\" must be a string");
        }
        return value.textValue();
    }

    private static byte[] utf8(JsonNode node, String field, String where) throws AuditException {
        return string(node, field, where).getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] hexField(JsonNode node, String field, String where) throws AuditException {
        try {
            return AuditEncoding.unhex(string(node, field, where));
        } catch (IllegalArgumentException e) {
            throw malformed(where + ": \"" + field + "\" is not hex", e);
        }
    }

    private static Instant instant(JsonNode node, String where) throws AuditException {
        return instant(string(node, "timestamp", where), where);
    }

    private static Instant instant(String text, String where) throws AuditException {
        try {
            Instant instant = Instant.parse(text);
            if (instant.getNano() % 1_000_000 != 0) {
                throw malformed(where + ": \"timestamp\" has sub-millisecond digits: " + text);
            }
            instant.toEpochMilli(); // within the signed 64-bit millisecond range, or ArithmeticException
            return instant;
        } catch (ArithmeticException e) {
            throw malformed(where + ": \"timestamp\" is outside the range of 64-bit epoch milliseconds: " + text, e);
        } catch (DateTimeParseException e) {
            throw malformed(where + ": \"timestamp\" is not ISO-8601 UTC (e.g. 2025-01-31T12:00:00.000Z): " + text, e);
        }
    }

    private static String text(JsonParser parser, JsonToken token, String field) throws IOException,
            AuditException {
        if (token != JsonToken.VALUE_STRING) {
            throw malformed("audit export field \"" + field + "\" must be a string");
        }
        return parser.getText();
    }

    private static void expect(JsonParser parser, JsonToken token, String field, String expected)
            throws IOException, AuditException {
        String actual = text(parser, token, field);
        if (!expected.equals(actual)) {
            throw malformed("audit export field \"" + field + "\" is \"" + actual + "\"; this verifier supports only \""
                    + expected + "\"");
        }
    }

    private static AuditException malformed(String message) {
        return new AuditException(AuditException.Code.MALFORMED_EXPORT, message);
    }

    private static AuditException malformed(String message, Throwable cause) {
        return new AuditException(AuditException.Code.MALFORMED_EXPORT, message, cause);
    }
}
