package io.tpmphone.server.audit;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.X509EncodedKeySpec;
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
import java.util.Set;

/**
 * Offline verification of an audit database or JSON export: recomputes every record hash and prev link, checks
 * that seq runs 1..n without gaps, and checks every checkpoint against the record at its seq and, given the public
 * key, its signature. Returns a {@link VerificationReport} naming the first broken record; throws
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
    private static final Set<String> RECORD_FIELDS = Set.of("seq", "timestamp", "type", "subject", "outcome",
            "detail", "prevHash", "hash");
    private static final Set<String> CHECKPOINT_FIELDS = Set.of("seq", "hash", "timestamp", "keyId", "signature");

    private AuditVerifier() {
    }

    /**
     * Verifies the database at {@code databaseFile}, read-only.
     *
     * @param checkpointKey the checkpoint signer's public key; without it signatures are not checked
     * @throws AuditException {@code STORAGE} if the file is missing, unreadable or not an audit database
     */
    public static VerificationReport verify(Path databaseFile, Optional<PublicKey> checkpointKey)
            throws AuditException {
        Objects.requireNonNull(databaseFile, "databaseFile");
        Objects.requireNonNull(checkpointKey, "checkpointKey");
        try (Connection connection = AuditDatabase.openReadOnly(databaseFile, BUSY_TIMEOUT)) {
            connection.setAutoCommit(false); // one snapshot: checkpoints and records
            try {
                List<AuditCheckpoint> checkpoints = AuditDatabase.checkpoints(connection);
                ChainChecker checker = new ChainChecker(checkpointKey, checkpoints);
                try (PreparedStatement query = connection.prepareStatement("SELECT "
                        + AuditDatabase.RAW_RECORD_COLUMNS + " FROM audit_record ORDER BY seq")) {
                    query.setFetchSize(1000);
                    try (ResultSet rows = query.executeQuery()) {
                        while (rows.next() && checker.accept(rows.getLong(1), rows.getLong(2), nonNull(rows.getBytes(3)),
                                nonNull(rows.getBytes(4)), nonNull(rows.getBytes(5)), nonNull(rows.getBytes(6)),
                                rows.getBytes(7), rows.getBytes(8))) {
                            // accept() does the work
                        }
                    }
                }
                return checker.finish(databaseFile.toString(), checkpoints, -1);
            } finally {
                connection.rollback();
            }
        } catch (SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot read audit database " + databaseFile
                    + ": " + e.getMessage(), e);
        }
    }

    /**
     * Verifies a JSON export ({@link AuditLog#exportJson}, format in {@code docs/audit.md}). Streams records; keeps
     * 32 bytes per record in memory only if the checkpoints come after the records.
     *
     * @throws AuditException {@code MALFORMED_EXPORT} naming the place if the document is not a well-formed export
     */
    public static VerificationReport verifyExport(InputStream json, Optional<PublicKey> checkpointKey)
            throws AuditException {
        Objects.requireNonNull(json, "json");
        Objects.requireNonNull(checkpointKey, "checkpointKey");
        try (JsonParser parser = CanonicalJson.MAPPER.getFactory().createParser(json)) {
            return verifyExport(parser, checkpointKey);
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

    private static VerificationReport verifyExport(JsonParser parser, Optional<PublicKey> key)
            throws IOException, AuditException {
        if (parser.nextToken() != JsonToken.START_OBJECT) {
            throw malformed("audit export must be a JSON object with \"format\": \"" + AuditExport.FORMAT + "\"");
        }
        List<AuditCheckpoint> checkpoints = null;
        ChainChecker checker = null;
        String format = null;
        long declaredCount = -1;
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String field = parser.currentName();
            JsonToken value = parser.nextToken();
            switch (field) {
                case "format" -> format = text(parser, value, field);
                case "version" -> {
                    if (value != JsonToken.VALUE_NUMBER_INT || parser.getLongValue() != AuditExport.VERSION) {
                        throw malformed("audit export version " + parser.getText() + " is not supported (expected "
                                + AuditExport.VERSION + ")");
                    }
                }
                case "hashAlgorithm" -> expect(parser, value, field, "SHA-256");
                case "recordEncoding" -> expect(parser, value, field, AuditEncoding.RECORD_TAG);
                case "checkpointEncoding" -> expect(parser, value, field, AuditEncoding.CHECKPOINT_TAG);
                case "signatureAlgorithm" -> expect(parser, value, field, SIGNATURE_ALGORITHM);
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
                case "records" -> {
                    if (checker != null) {
                        throw malformed("audit export has two \"records\" arrays");
                    }
                    checker = new ChainChecker(key, checkpoints);
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
        return checker.finish("export", checkpoints, declaredCount);
    }

    private static List<AuditCheckpoint> readCheckpoints(JsonParser parser, JsonToken token)
            throws IOException, AuditException {
        if (token != JsonToken.START_ARRAY) {
            throw malformed("audit export field \"checkpoints\" must be an array");
        }
        List<AuditCheckpoint> checkpoints = new ArrayList<>();
        while (parser.nextToken() != JsonToken.END_ARRAY) {
            JsonNode node = CanonicalJson.MAPPER.readTree(parser);
            String where = "audit export checkpoint #" + (checkpoints.size() + 1);
            requireFields(node, CHECKPOINT_FIELDS, where);
            long seq = integer(node, "seq", where);
            try {
                checkpoints.add(new AuditCheckpoint(seq, hexField(node, "hash", where), instant(node, where),
                        string(node, "keyId", where), Base64.getDecoder().decode(string(node, "signature", where))));
            } catch (IllegalArgumentException e) {
                throw malformed(where + " (seq " + seq + "): \"signature\" is not base64", e);
            }
        }
        return checkpoints;
    }

    private static void readRecords(JsonParser parser, JsonToken token, ChainChecker checker)
            throws IOException, AuditException {
        if (token != JsonToken.START_ARRAY) {
            throw malformed("audit export field \"records\" must be an array");
        }
        long index = 0;
        while (parser.nextToken() != JsonToken.END_ARRAY) {
            index++;
            if (!checker.intact()) {
                parser.skipChildren(); // stop at the first broken record, but still read the whole document
                continue;
            }
            JsonNode node = CanonicalJson.MAPPER.readTree(parser);
            String where = "audit export record #" + index;
            requireFields(node, RECORD_FIELDS, where);
            long seq = integer(node, "seq", where);
            where += " (seq " + seq + ")";
            checker.accept(seq, instant(node, where).toEpochMilli(), utf8(node, "type", where),
                    utf8(node, "subject", where), utf8(node, "outcome", where), utf8(node, "detail", where),
                    hexField(node, "prevHash", where), hexField(node, "hash", where));
        }
    }

    /**
     * Reads a public key from PEM: {@code PUBLIC KEY} (X.509 SubjectPublicKeyInfo) or {@code CERTIFICATE}.
     *
     * @throws IllegalArgumentException saying what is wrong with the text
     */
    public static PublicKey publicKeyFromPem(String pem) {
        Objects.requireNonNull(pem, "pem");
        try {
            if (pem.contains("-----BEGIN CERTIFICATE-----")) {
                X509Certificate certificate = (X509Certificate) CertificateFactory.getInstance("X.509")
                        .generateCertificate(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
                return certificate.getPublicKey();
            }
            int begin = pem.indexOf("-----BEGIN PUBLIC KEY-----");
            int end = pem.indexOf("-----END PUBLIC KEY-----");
            if (begin < 0 || end < begin) {
                throw new IllegalArgumentException("expected a PEM \"PUBLIC KEY\" or \"CERTIFICATE\" block");
            }
            byte[] der = Base64.getMimeDecoder().decode(pem.substring(begin + "-----BEGIN PUBLIC KEY-----".length(), end));
            return KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(der));
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException("not an EC public key or certificate in PEM: " + e.getMessage(), e);
        }
    }

    /** The PEM {@code PUBLIC KEY} text of {@code key}, for handing the checkpoint key to auditors. */
    public static String publicKeyPem(PublicKey key) {
        return "-----BEGIN PUBLIC KEY-----\n"
                + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(key.getEncoded())
                + "\n-----END PUBLIC KEY-----\n";
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
        String text = string(node, "timestamp", where);
        try {
            Instant instant = Instant.parse(text);
            if (instant.getNano() % 1_000_000 != 0) {
                throw malformed(where + ": \"timestamp\" has sub-millisecond digits: " + text);
            }
            return instant;
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
