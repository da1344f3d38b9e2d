package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.Hex;
import io.tpmphone.attestation.internal.TpmReader;
import io.tpmphone.attestation.internal.TpmWriter;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * One entry of the tpmphone {@link MeasurementLog}: what was measured, into which PCR, at which position.
 * Immutable and thread-safe; byte arrays are copied in and out.
 *
 * <p>Wire encoding (big-endian, see {@code docs/attestation.md}):
 * <pre>
 * u32 magic 0x54504556 ("TPEV") | u32 sequence | u32 pcrIndex | u32 type | u16 hashAlg (0x000B, SHA-256)
 * | 32 bytes contentDigest | u32 dataLength | dataLength bytes data (UTF-8, at most 4096)
 * </pre>
 *
 * <p>The value extended into the PCR is {@link #extendDigest()}, which binds position, PCR, type and data as well as
 * the content digest, so modifying, removing or inserting an event changes the replayed PCR value.
 */
public final class MeasurementEvent {
    /** {@code "TPEV"}. */
    public static final int MAGIC = 0x5450_4556;
    /** The largest {@link #data()} accepted, in bytes. */
    public static final int MAX_DATA_LENGTH = 4096;
    /** The only digest algorithm of the log. */
    public static final HashAlgorithm HASH = HashAlgorithm.SHA256;
    /** Domain-separation label at the start of {@link #extendDigest()}. */
    public static final String EXTEND_LABEL = "tpmphone-event-v1";

    static final int FIXED_LENGTH = 4 + 4 + 4 + 4 + 2 + 32 + 4;
    private static final byte[] EXTEND_LABEL_BYTES = EXTEND_LABEL.getBytes(StandardCharsets.US_ASCII);

    private final int sequence;
    private final int pcrIndex;
    private final EventType type;
    private final byte[] contentDigest;
    private final byte[] data;

    private MeasurementEvent(int sequence, int pcrIndex, EventType type, byte[] contentDigest, byte[] data) {
        this.sequence = sequence;
        this.pcrIndex = pcrIndex;
        this.type = type;
        this.contentDigest = contentDigest;
        this.data = data;
    }

    /**
     * An event with {@code data} given as bytes.
     *
     * @throws IllegalArgumentException if the sequence is negative, the PCR is outside 0..23, the digest is not 32
     *     bytes, or the data is longer than 4096 bytes or not valid UTF-8
     */
    public static MeasurementEvent of(int sequence, int pcrIndex, EventType type, byte[] contentDigest,
            byte[] data) {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(contentDigest, "contentDigest");
        Objects.requireNonNull(data, "data");
        if (sequence < 0) {
            throw new IllegalArgumentException("event sequence " + sequence + " is negative; the first event is 0");
        }
        if (pcrIndex < 0 || pcrIndex >= PcrSelection.PCR_COUNT) {
            throw new IllegalArgumentException("event PCR index " + pcrIndex + " is outside 0..23");
        }
        if (contentDigest.length != HASH.digestLength()) {
            throw new IllegalArgumentException("event content digest is " + contentDigest.length
                    + " bytes; a SHA-256 digest is 32");
        }
        if (data.length > MAX_DATA_LENGTH) {
            throw new IllegalArgumentException("event data is " + data.length + " bytes; at most "
                    + MAX_DATA_LENGTH + " are allowed");
        }
        if (!isUtf8(data)) {
            throw new IllegalArgumentException("event data is not valid UTF-8");
        }
        return new MeasurementEvent(sequence, pcrIndex, type, contentDigest.clone(), data.clone());
    }

    /** As {@link #of(int, int, EventType, byte[], byte[])} with {@code data} encoded as UTF-8. */
    public static MeasurementEvent of(int sequence, int pcrIndex, EventType type, byte[] contentDigest,
            String data) {
        return of(sequence, pcrIndex, type, contentDigest,
                Objects.requireNonNull(data, "data").getBytes(StandardCharsets.UTF_8));
    }

    /** Position of the event in its log: 0, 1, 2, ... */
    public int sequence() {
        return sequence;
    }

    /** The PCR the event was extended into (for {@link EventType#BASELINE}: the PCR it describes). */
    public int pcrIndex() {
        return pcrIndex;
    }

    public EventType type() {
        return type;
    }

    /**
     * A copy of the SHA-256 digest of the measured content (e.g. a jar's bytes); for {@link EventType#BASELINE},
     * the PCR value observed when the log started.
     */
    public byte[] contentDigest() {
        return contentDigest.clone();
    }

    /** {@link #contentDigest()} as lower-case hex. */
    public String contentDigestHex() {
        return Hex.of(contentDigest);
    }

    /** A copy of the informational data (UTF-8). */
    public byte[] data() {
        return data.clone();
    }

    /** The informational data decoded as UTF-8 (e.g. a jar file name or a path). */
    public String dataAsString() {
        return new String(data, StandardCharsets.UTF_8);
    }

    /**
     * The digest extended into the PCR: {@code SHA-256("tpmphone-event-v1" || u32 sequence || u32 pcrIndex
     * || u32 type || u32 len(data) || data || contentDigest)}. Not meaningful for {@link EventType#BASELINE}, which is
     * never extended.
     */
    public byte[] extendDigest() {
        return HASH.digest(EXTEND_LABEL_BYTES, new TpmWriter().u32(sequence).u32(pcrIndex).u32(type.code())
                .u32(data.length).toByteArray(), data, contentDigest);
    }

    /** The wire encoding of this event (see the class documentation). */
    public byte[] encode() {
        return new TpmWriter().u32(MAGIC).u32(sequence).u32(pcrIndex).u32(type.code()).u16(HASH.tpmId())
                .bytes(contentDigest).u32(data.length).bytes(data).toByteArray();
    }

    /**
     * Parses exactly one encoded event (no trailing bytes).
     *
     * @throws MalformedStructureException naming the field that is wrong
     */
    public static MeasurementEvent parse(byte[] encoded) throws MalformedStructureException {
        TpmReader r = new TpmReader(Objects.requireNonNull(encoded, "encoded"), "MeasurementEvent");
        MeasurementEvent e = read(r, "");
        r.requireEnd();
        return e;
    }

    /** Reads one event; field names in errors are prefixed with {@code prefix} (e.g. {@code events[3].}). */
    static MeasurementEvent read(TpmReader r, String prefix) throws MalformedStructureException {
        int at = r.offset();
        long magic = r.u32(prefix + "magic");
        if (magic != MAGIC) {
            throw r.error(prefix + "magic", at, String.format("0x%08X is not the event magic 0x%08X (\"TPEV\")",
                    magic, MAGIC));
        }
        at = r.offset();
        long sequence = r.u32(prefix + "sequence");
        if (sequence > Integer.MAX_VALUE) {
            throw r.error(prefix + "sequence", at, "sequence " + sequence + " exceeds " + Integer.MAX_VALUE);
        }
        at = r.offset();
        long pcr = r.u32(prefix + "pcrIndex");
        if (pcr >= PcrSelection.PCR_COUNT) {
            throw r.error(prefix + "pcrIndex", at, "PCR index " + pcr + " is outside 0..23");
        }
        at = r.offset();
        long code = r.u32(prefix + "type");
        EventType type;
        try {
            type = EventType.fromCode(code);
        } catch (MalformedStructureException e) {
            throw new MalformedStructureException(r.structure(), prefix + "type", at,
                    String.format("unknown event type 0x%08X; expected 0x80000000..0x80000007", code), e);
        }
        at = r.offset();
        int alg = r.u16(prefix + "hashAlg");
        if (alg != HASH.tpmId()) {
            throw r.error(prefix + "hashAlg", at, String.format(
                    "hash algorithm 0x%04X is not allowed; the event log uses sha256 (0x000B) only", alg));
        }
        byte[] digest = r.bytes(HASH.digestLength(), prefix + "contentDigest");
        at = r.offset();
        long length = r.u32(prefix + "dataLength");
        if (length > MAX_DATA_LENGTH) {
            throw r.error(prefix + "dataLength", at, "data length " + length + " exceeds the maximum "
                    + MAX_DATA_LENGTH);
        }
        at = r.offset();
        byte[] data = r.bytes((int) length, prefix + "data");
        if (!isUtf8(data)) {
            throw r.error(prefix + "data", at, "data is not valid UTF-8");
        }
        return new MeasurementEvent((int) sequence, (int) pcr, type, digest, data);
    }

    private static boolean isUtf8(byte[] data) {
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(data));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MeasurementEvent e && sequence == e.sequence && pcrIndex == e.pcrIndex && type == e.type
                && Arrays.equals(contentDigest, e.contentDigest) && Arrays.equals(data, e.data);
    }

    @Override
    public int hashCode() {
        return Objects.hash(sequence, pcrIndex, type, Arrays.hashCode(contentDigest), Arrays.hashCode(data));
    }

    @Override
    public String toString() {
        return "MeasurementEvent[" + sequence + ", pcr " + pcrIndex + ", " + type + ", "
                + Hex.abbreviate(contentDigest) + ", '" + dataAsString().replace('\0', ' ') + "']";
    }
}
