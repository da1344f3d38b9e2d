package io.tpmphone.server.audit;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * The byte encodings that are hashed (records) and signed (checkpoints). Documented in {@code docs/audit.md};
 * changing anything here breaks every existing log, so a new encoding needs a new domain tag.
 *
 * <p>Stateless and thread-safe.
 */
final class AuditEncoding {
    static final int HASH_LENGTH = 32;
    static final String RECORD_TAG = "tpmphone.audit.record.v1";
    /** The first checkpoint encoding: still verified (see {@code VerifyOptions#acceptV1()}), no longer written. */
    static final String CHECKPOINT_TAG = "tpmphone.audit.checkpoint.v1";
    /** The checkpoint encoding written since v2: chained, with the interval, age bound and a closed flag. */
    static final String CHECKPOINT_V2_TAG = "tpmphone.audit.checkpoint.v2";
    /**
     * v2's fields under a new tag, written since the signed head: a v3 checkpoint also signs "this log keeps a signed
     * head", so a verifier (and the server on open) requires one wherever a v3 checkpoint is left.
     */
    static final String CHECKPOINT_V3_TAG = "tpmphone.audit.checkpoint.v3";
    /** The signed head: re-signed by a running writer at least every refresh interval (docs/audit.md). */
    static final String HEAD_TAG = "tpmphone.audit.head.v1";
    private static final HexFormat HEX = HexFormat.of();

    private AuditEncoding() {
    }

    static byte[] zeroHash() {
        return new byte[HASH_LENGTH];
    }

    /**
     * SHA-256 over {@code lp(tag) || u64(seq) || i64(timestampMillis) || lp(type) || lp(subject) || lp(outcome) ||
     * lp(detail) || lp(prevHash)}, with {@code lp(x) = u32(len(x)) || x}, big-endian integers, UTF-8 text.
     */
    static byte[] recordHash(long seq, long timestampMillis, byte[] type, byte[] subject, byte[] outcome,
            byte[] detail, byte[] prevHash) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(128 + subject.length + outcome.length + detail.length);
        lengthPrefixed(out, RECORD_TAG.getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(ByteBuffer.allocate(16).putLong(seq).putLong(timestampMillis).array());
        lengthPrefixed(out, type);
        lengthPrefixed(out, subject);
        lengthPrefixed(out, outcome);
        lengthPrefixed(out, detail);
        lengthPrefixed(out, prevHash);
        return sha256().digest(out.toByteArray());
    }

    /**
     * {@link #recordHash(long, long, byte[], byte[], byte[], byte[], byte[])} for many records on one thread: one
     * digest and one 8-byte buffer reused, no per-record stream or buffer (what dominated verifying a large log).
     * Not thread-safe.
     */
    static final class RecordHasher {
        private static final byte[] TAG = RECORD_TAG.getBytes(StandardCharsets.US_ASCII);
        private final MessageDigest digest = sha256();
        private final byte[] number = new byte[8];

        byte[] hash(long seq, long timestampMillis, byte[] type, byte[] subject, byte[] outcome, byte[] detail,
                byte[] prevHash) {
            lengthPrefixed(TAG);
            u64(seq);
            u64(timestampMillis);
            lengthPrefixed(type);
            lengthPrefixed(subject);
            lengthPrefixed(outcome);
            lengthPrefixed(detail);
            lengthPrefixed(prevHash);
            return digest.digest();
        }

        private void u64(long v) {
            for (int i = 7; i >= 0; i--) {
                number[i] = (byte) v;
                v >>>= 8;
            }
            digest.update(number, 0, 8);
        }

        private void lengthPrefixed(byte[] value) {
            int n = value.length;
            number[0] = (byte) (n >>> 24);
            number[1] = (byte) (n >>> 16);
            number[2] = (byte) (n >>> 8);
            number[3] = (byte) n;
            digest.update(number, 0, 4);
            digest.update(value);
        }
    }

    static byte[] recordHash(long seq, long timestampMillis, String type, String subject, String outcome,
            String detail, byte[] prevHash) {
        return recordHash(seq, timestampMillis, utf8(type), utf8(subject), utf8(outcome), utf8(detail), prevHash);
    }

    /** {@code lp(tag) || u64(seq) || lp(hash) || i64(timestampMillis)}: what a checkpoint signature covers. */
    static byte[] checkpointSignedData(long seq, byte[] hash, long timestampMillis) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(96);
        lengthPrefixed(out, CHECKPOINT_TAG.getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(ByteBuffer.allocate(8).putLong(seq).array());
        lengthPrefixed(out, hash);
        out.writeBytes(ByteBuffer.allocate(8).putLong(timestampMillis).array());
        return out.toByteArray();
    }

    /**
     * {@code lp(tag.v2) || u64(seq) || lp(hash) || i64(timestampMillis) || u32(every) || u64(maxUnsignedMillis) ||
     * u8(closed) || lp(prevDigest)}: what a v2 checkpoint signature covers. {@code prevDigest} is the SHA-256 of the
     * previous checkpoint's signed data (v1 or v2), or 32 zero bytes for the log's first checkpoint, so a checkpoint
     * cannot be removed or moved without breaking the next one.
     */
    static byte[] checkpointV2SignedData(long seq, byte[] hash, long timestampMillis, int every,
            long maxUnsignedMillis, boolean closed, byte[] prevDigest) {
        return chainedCheckpointSignedData(CHECKPOINT_V2_TAG, seq, hash, timestampMillis, every, maxUnsignedMillis,
                closed, prevDigest);
    }

    /** As {@link #checkpointV2SignedData}, under the v3 tag. */
    static byte[] checkpointV3SignedData(long seq, byte[] hash, long timestampMillis, int every,
            long maxUnsignedMillis, boolean closed, byte[] prevDigest) {
        return chainedCheckpointSignedData(CHECKPOINT_V3_TAG, seq, hash, timestampMillis, every, maxUnsignedMillis,
                closed, prevDigest);
    }

    private static byte[] chainedCheckpointSignedData(String tag, long seq, byte[] hash, long timestampMillis,
            int every, long maxUnsignedMillis, boolean closed, byte[] prevDigest) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(160);
        lengthPrefixed(out, tag.getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(ByteBuffer.allocate(8).putLong(seq).array());
        lengthPrefixed(out, hash);
        out.writeBytes(ByteBuffer.allocate(8 + 4 + 8 + 1).putLong(timestampMillis).putInt(every)
                .putLong(maxUnsignedMillis).put((byte) (closed ? 1 : 0)).array());
        lengthPrefixed(out, prevDigest);
        return out.toByteArray();
    }

    /**
     * {@code lp(head tag) || u64(seq) || lp(hash) || i64(timestampMillis) || u64(checkpoints) ||
     * lp(checkpointDigest) || u64(refreshMillis) || u8(closed)}: what the signed head covers. {@code checkpointDigest}
     * is the SHA-256 of the last checkpoint's signed data (32 zero bytes if there is none), {@code checkpoints} their
     * count; {@code closed} says the writer closed the log here, so no record may follow.
     */
    static byte[] headSignedData(long seq, byte[] hash, long timestampMillis, long checkpoints,
            byte[] checkpointDigest, long refreshMillis, boolean closed) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(160);
        lengthPrefixed(out, HEAD_TAG.getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(ByteBuffer.allocate(8).putLong(seq).array());
        lengthPrefixed(out, hash);
        out.writeBytes(ByteBuffer.allocate(16).putLong(timestampMillis).putLong(checkpoints).array());
        lengthPrefixed(out, checkpointDigest);
        out.writeBytes(ByteBuffer.allocate(9).putLong(refreshMillis).put((byte) (closed ? 1 : 0)).array());
        return out.toByteArray();
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String hex(byte[] bytes) {
        return HEX.formatHex(bytes);
    }

    /** Parses lowercase or uppercase hex; throws {@link IllegalArgumentException} on anything else. */
    static byte[] unhex(String hex) {
        return HEX.parseHex(hex);
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform must provide SHA-256", e);
        }
    }

    private static void lengthPrefixed(ByteArrayOutputStream out, byte[] value) {
        out.writeBytes(ByteBuffer.allocate(4).putInt(value.length).array());
        out.writeBytes(value);
    }
}
