package io.tpmphone.server.audit;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.OutputStream;
import java.io.Writer;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.List;
import java.security.PublicKey;
import java.util.Optional;

/**
 * Writes the JSON export of an audit database (format in {@code docs/audit.md}): checkpoints first, then records,
 * streamed in one read transaction so the export is a consistent snapshot of any size.
 *
 * <p>Stateless and thread-safe.
 */
final class AuditExport {
    static final String FORMAT = "tpmphone-audit-export";
    /**
     * 2 since checkpoint encoding v2: checkpoints carry "version" and, for v2, the chained fields; 3 since the signed
     * head: a "head" object before the records; 4 since the in-browser verifier: an optional "publicKey" (PEM), so an
     * export is one file to verify offline.
     */
    static final int VERSION = 4;
    static final DateTimeFormatter TIMESTAMP = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'")
            .withZone(ZoneOffset.UTC);

    private AuditExport() {
    }

    static String timestamp(long epochMillis) {
        return TIMESTAMP.format(Instant.ofEpochMilli(epochMillis));
    }

    /**
     * Streams the export; the caller's connection must be read-only and is left in auto-commit mode.
     *
     * @param publicKey the checkpoint key to carry in the export ({@code "publicKey"}), if known
     * @throws AuditException {@code KEY_MISMATCH} if {@code publicKey} did not sign the log's head
     */
    static void write(Connection connection, OutputStream out, Optional<PublicKey> publicKey)
            throws SQLException, IOException, AuditException {
        write(connection, CanonicalJson.MAPPER.getFactory().createGenerator(out, JsonEncoding.UTF8), publicKey);
    }

    /** As {@link #write(Connection, OutputStream, Optional)}, to a character stream. */
    static void write(Connection connection, Writer out, Optional<PublicKey> publicKey)
            throws SQLException, IOException, AuditException {
        write(connection, CanonicalJson.MAPPER.getFactory().createGenerator(out), publicKey);
    }

    private static void write(Connection connection, JsonGenerator generator, Optional<PublicKey> publicKey)
            throws SQLException, IOException, AuditException {
        boolean autoCommit = connection.getAutoCommit();
        connection.setAutoCommit(false); // one snapshot for checkpoints and records
        try (JsonGenerator json = generator) {
            json.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
            json.useDefaultPrettyPrinter();
            long lastSeq = AuditDatabase.lastSeq(connection);
            json.writeStartObject();
            json.writeStringField("format", FORMAT);
            json.writeNumberField("version", VERSION);
            json.writeStringField("hashAlgorithm", "SHA-256");
            json.writeStringField("recordEncoding", AuditEncoding.RECORD_TAG);
            json.writeStringField("checkpointEncoding", AuditEncoding.CHECKPOINT_V3_TAG);
            json.writeStringField("signatureAlgorithm", AuditVerifier.SIGNATURE_ALGORITHM);
            json.writeNumberField("recordCount", lastSeq);
            Optional<AuditHead> head = AuditDatabase.head(connection);
            if (publicKey.isPresent()) {
                String keyId = AuditSigner.keyIdOf(publicKey.get());
                if (head.isPresent() && !head.get().keyId().equals(keyId)) {
                    throw new AuditException(AuditException.Code.KEY_MISMATCH, "the public key given (key id " + keyId
                            + ") did not sign this log (its head is signed by key id " + head.get().keyId()
                            + "): give the server's keys/result-signing-cert.pem");
                }
                // Carried for convenience only: a verifier that trusts it checks the file against itself.
                json.writeStringField("publicKey", AuditVerifier.publicKeyPem(publicKey.get()));
            }
            if (head.isPresent()) {
                AuditHead h = head.get();
                json.writeObjectFieldStart("head");
                json.writeNumberField("seq", h.seq());
                json.writeStringField("hash", h.hashHex());
                json.writeStringField("timestamp", timestamp(h.timestamp().toEpochMilli()));
                json.writeNumberField("checkpoints", h.checkpoints());
                json.writeStringField("checkpointDigest", AuditEncoding.hex(h.checkpointDigest()));
                json.writeNumberField("refreshMillis", h.refreshMillis());
                json.writeBooleanField("closed", h.closed());
                json.writeStringField("keyId", h.keyId());
                json.writeStringField("signature", Base64.getEncoder().encodeToString(h.signature()));
                json.writeEndObject();
            }
            List<AuditCheckpoint> checkpoints = AuditDatabase.checkpoints(connection);
            json.writeArrayFieldStart("checkpoints");
            for (AuditCheckpoint checkpoint : checkpoints) {
                json.writeStartObject();
                json.writeNumberField("version", checkpoint.version());
                json.writeNumberField("seq", checkpoint.seq());
                json.writeStringField("hash", checkpoint.hashHex());
                json.writeStringField("timestamp", timestamp(checkpoint.timestamp().toEpochMilli()));
                json.writeStringField("keyId", checkpoint.keyId());
                json.writeStringField("signature", Base64.getEncoder().encodeToString(checkpoint.signature()));
                if (checkpoint.chained()) {
                    json.writeNumberField("every", checkpoint.every());
                    json.writeNumberField("maxUnsignedMillis", checkpoint.maxUnsignedMillis());
                    json.writeBooleanField("closed", checkpoint.closed());
                    json.writeStringField("prevDigest", AuditEncoding.hex(checkpoint.prevDigest()));
                }
                json.writeEndObject();
            }
            json.writeEndArray();
            json.writeArrayFieldStart("records");
            try (PreparedStatement query = connection.prepareStatement("SELECT " + AuditDatabase.RECORD_COLUMNS
                    + " FROM audit_record ORDER BY seq")) {
                query.setFetchSize(1000);
                try (ResultSet rows = query.executeQuery()) {
                    while (rows.next()) {
                        json.writeStartObject();
                        json.writeNumberField("seq", rows.getLong(1));
                        json.writeStringField("timestamp", timestamp(rows.getLong(2)));
                        json.writeStringField("type", rows.getString(3));
                        json.writeStringField("subject", rows.getString(4));
                        json.writeStringField("outcome", rows.getString(5));
                        json.writeStringField("detail", rows.getString(6));
                        json.writeStringField("prevHash", AuditEncoding.hex(rows.getBytes(7)));
                        json.writeStringField("hash", AuditEncoding.hex(rows.getBytes(8)));
                        json.writeEndObject();
                    }
                }
            }
            json.writeEndArray();
            json.writeEndObject();
        } finally {
            connection.rollback();
            connection.setAutoCommit(autoCommit);
        }
    }
}
