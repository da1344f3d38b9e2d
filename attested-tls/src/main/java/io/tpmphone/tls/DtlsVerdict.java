package io.tpmphone.tls;

import io.tpmphone.attestation.IntegrityLevel;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * One side's verdict on the far end of a DTLS-SRTP association, sent to the far end inside the association once it
 * appraised it (docs/tls-attestation.md, "Verdicts"): whether its call policy accepts the far end, the far end's level
 * as this side established it, and the level this side's policy required. Both sides of an attested association send
 * one, so each knows before ringing whether the other accepted it, and why not — through any proxy, which sees none
 * of it. Record layout: the evidence record header (version 1, type {@link #TYPE}, total length = payload length,
 * offset 0) and the payload {@code "ACCEPT|REFUSE <far end level> <required level>"} in ASCII; acknowledged by a
 * header of type {@link #TYPE_RECEIVED}. Immutable.
 */
public record DtlsVerdict(boolean accept, IntegrityLevel farEnd, IntegrityLevel required) {
    static final int TYPE = 3;
    static final int TYPE_RECEIVED = 4;
    private static final int MAX_PAYLOAD = 64;

    public DtlsVerdict {
        Objects.requireNonNull(farEnd, "farEnd");
        Objects.requireNonNull(required, "required");
    }

    /** The record that carries this verdict. */
    byte[] encode() {
        byte[] payload = ((accept ? "ACCEPT " : "REFUSE ") + farEnd.name() + " " + required.name())
                .getBytes(StandardCharsets.US_ASCII);
        return ByteBuffer.allocate(DtlsEvidenceExchange.HEADER + payload.length)
                .put((byte) DtlsEvidenceExchange.VERSION).put((byte) TYPE).putShort((short) payload.length)
                .putShort((short) 0).put(payload).array();
    }

    /** The acknowledgement of a verdict record. */
    static byte[] acknowledgement() {
        return ByteBuffer.allocate(DtlsEvidenceExchange.HEADER).put((byte) DtlsEvidenceExchange.VERSION)
                .put((byte) TYPE_RECEIVED).putShort((short) 0).putShort((short) 0).array();
    }

    /** The record type of an application-data record (a verdict's, an acknowledgement's, evidence's), or -1. */
    static int typeOf(byte[] record, int length) {
        return length >= DtlsEvidenceExchange.HEADER && record[0] == DtlsEvidenceExchange.VERSION ? record[1] & 0xff
                : -1;
    }

    /**
     * Reads a verdict record.
     *
     * @throws MalformedExtensionException naming what is wrong (never echoing the payload)
     */
    static DtlsVerdict decode(byte[] record, int length) throws MalformedExtensionException {
        if (typeOf(record, length) != TYPE) {
            throw new MalformedExtensionException("not a verdict record");
        }
        ByteBuffer b = ByteBuffer.wrap(record, 2, length - 2);
        int total = b.getShort() & 0xffff;
        int offset = b.getShort() & 0xffff;
        if (offset != 0 || total != b.remaining() || total < 1 || total > MAX_PAYLOAD) {
            throw new MalformedExtensionException("a verdict record's length or offset is wrong", true);
        }
        String[] f = new String(record, DtlsEvidenceExchange.HEADER, total, StandardCharsets.US_ASCII).split(" ", -1);
        if (f.length != 3 || !(f[0].equals("ACCEPT") || f[0].equals("REFUSE"))) {
            throw new MalformedExtensionException("a verdict is not 'ACCEPT|REFUSE <level> <level>'", true);
        }
        try {
            return new DtlsVerdict(f[0].equals("ACCEPT"), IntegrityLevel.valueOf(f[1]), IntegrityLevel.valueOf(f[2]));
        } catch (IllegalArgumentException e) {
            throw new MalformedExtensionException("a verdict names a level that does not exist", true);
        }
    }

    /** For the far end's user: {@code "refused: it requires MEASURED and saw us as FAILED"}. */
    public String display() {
        return (accept ? "accepted" : "refused") + ": it requires " + required + " and saw us as " + farEnd;
    }
}
