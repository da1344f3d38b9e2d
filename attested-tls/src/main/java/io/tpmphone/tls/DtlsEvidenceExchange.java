package io.tpmphone.tls;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Optional;

/**
 * The evidence exchange that follows a DTLS-SRTP handshake (docs/tls-attestation.md, "End to end over DTLS-SRTP"):
 * each side that announced attestation in its hello sends its {@link Evidence} as DTLS application data, split into
 * records that fit the path, and repeats them until the peer says it has all of them. DTLS application data is
 * unreliable (UDP), so this is the whole reliability layer; a record can only come from the authenticated peer (DTLS
 * protects it), so a record that breaks the rules is the peer's fault and ends the exchange. Byte layout of one record,
 * big-endian:
 *
 * <pre>
 * struct {
 *     uint8  version;        // 1
 *     uint8  type;           // 1 = evidence fragment, 2 = evidence received
 *     uint16 total_length;   // length of the whole AttestationEvidence, 1..MAX_EVIDENCE
 *     uint16 offset;         // of this fragment in it (0 in type 2)
 *     opaque fragment[..];   // type 1: 1..total_length-offset bytes; type 2: none
 * } EvidenceRecord;
 * </pre>
 *
 * This class is the state machine only (no I/O, not thread-safe): {@link #receive(byte[], int)} takes one record,
 * {@link #takeAcknowledgement()} and
 * {@link #unacknowledgedFragments()} say what to send. Memory is bounded by {@link #MAX_EVIDENCE}.
 */
final class DtlsEvidenceExchange {
    static final int VERSION = 1;
    static final int TYPE_FRAGMENT = 1;
    static final int TYPE_RECEIVED = 2;
    static final int HEADER = 6;
    /** Largest evidence accepted: a quote, an AK and a passport are about 2 KiB; 16 KiB leaves room, no more. */
    static final int MAX_EVIDENCE = 16 * 1024;

    private final byte[] ours;
    private final int maxFragment;
    private final boolean expectPeer;
    private boolean oursReceived;
    private byte[] peer;
    private BitSet peerHave;
    private int peerHaveCount;
    private boolean peerComplete;
    private boolean acknowledge;
    /** A verdict record that arrived during the exchange (the far end was done first), for the association. */
    private byte[] early;

    /**
     * @param ours        our encoded evidence, or null when we send none
     * @param expectPeer  whether the peer announced attestation, so evidence must come
     * @param sendLimit   the largest DTLS application-data record the path takes
     */
    DtlsEvidenceExchange(byte[] ours, boolean expectPeer, int sendLimit) {
        if (ours != null && (ours.length < 1 || ours.length > MAX_EVIDENCE)) {
            throw new IllegalArgumentException("our evidence is " + ours.length + " bytes, not 1.." + MAX_EVIDENCE);
        }
        if (sendLimit <= HEADER) {
            throw new IllegalArgumentException("a send limit of " + sendLimit + " bytes leaves no room for evidence");
        }
        this.ours = ours == null ? null : ours.clone();
        this.expectPeer = expectPeer;
        this.maxFragment = sendLimit - HEADER;
    }

    /** Whether both directions are finished: ours acknowledged (or none), the peer's complete (or none expected). */
    boolean done() {
        return (ours == null || oursReceived) && (!expectPeer || peerComplete);
    }

    boolean oursAcknowledged() {
        return ours == null || oursReceived;
    }

    /** A verdict record that arrived during the exchange, once (then empty). */
    Optional<byte[]> takeEarlyVerdict() {
        byte[] e = early;
        early = null;
        return Optional.ofNullable(e);
    }

    /** The peer's evidence once every byte of it arrived. */
    Optional<byte[]> peerEvidence() {
        return peerComplete ? Optional.of(peer.clone()) : Optional.empty();
    }

    /** How many bytes of the peer's evidence arrived so far, and of how many (for a timeout's reason). */
    String progress() {
        if (!expectPeer) {
            return "no evidence expected from the peer";
        }
        if (peer == null) {
            return "no evidence record arrived from the peer";
        }
        return peerHaveCount + " of " + peer.length + " bytes of the peer's evidence arrived";
    }

    /** The acknowledgement to send, once per (re)completion of the peer's evidence; empty if none is due. */
    Optional<byte[]> takeAcknowledgement() {
        if (!acknowledge) {
            return Optional.empty();
        }
        acknowledge = false;
        return Optional.of(header(TYPE_RECEIVED, peer.length, 0, 0).array());
    }

    /** Every fragment of our evidence, until the peer acknowledged it (then none). */
    List<byte[]> unacknowledgedFragments() {
        List<byte[]> out = new ArrayList<>();
        if (ours != null && !oursReceived) {
            for (int off = 0; off < ours.length; off += maxFragment) {
                int n = Math.min(maxFragment, ours.length - off);
                ByteBuffer b = header(TYPE_FRAGMENT, ours.length, off, n);
                b.put(ours, off, n);
                out.add(b.array());
            }
        }
        return out;
    }

    /**
     * Takes one application-data record from the peer.
     *
     * @throws MalformedExtensionException when the record breaks the layout or the rules above (the peer's fault)
     */
    void receive(byte[] record, int length) throws MalformedExtensionException {
        if (length < HEADER) {
            throw new MalformedExtensionException("an evidence record of " + length + " bytes is shorter than its "
                    + "header");
        }
        ByteBuffer b = ByteBuffer.wrap(record, 0, length);
        int version = b.get() & 0xff;
        int type = b.get() & 0xff;
        int total = b.getShort() & 0xffff;
        int offset = b.getShort() & 0xffff;
        if (version != VERSION) {
            throw new MalformedExtensionException("evidence record version " + version + " is not " + VERSION, true);
        }
        switch (type) {
            case TYPE_RECEIVED -> received(total, offset, b.remaining());
            case TYPE_FRAGMENT -> fragment(total, offset, b);
            case DtlsVerdict.TYPE -> {
                // the far end finished its exchange before us and sent its verdict: kept for the association, which
                // takes verdicts. The first one counts (as in the association); its resent copies are not kept.
                if (early == null) {
                    early = java.util.Arrays.copyOf(record, length);
                }
            }
            case DtlsVerdict.TYPE_RECEIVED -> {
                // an acknowledgement of a verdict we cannot have sent yet (ours goes after the exchange): ignored
            }
            default -> throw new MalformedExtensionException("evidence record type " + type + " is unknown", true);
        }
    }

    private void received(int total, int offset, int rest) throws MalformedExtensionException {
        if (ours == null) {
            throw new MalformedExtensionException("the peer acknowledged evidence this side never sent", true);
        }
        if (total != ours.length || offset != 0 || rest != 0) {
            throw new MalformedExtensionException("the peer's acknowledgement does not match our evidence", true);
        }
        oursReceived = true;
    }

    private void fragment(int total, int offset, ByteBuffer b) throws MalformedExtensionException {
        if (!expectPeer) {
            throw new MalformedExtensionException("the peer sent evidence it had not announced in its hello", true);
        }
        if (total < 1 || total > MAX_EVIDENCE) {
            throw new MalformedExtensionException("the peer's evidence of " + total + " bytes is not 1.."
                    + MAX_EVIDENCE, true);
        }
        int n = b.remaining();
        if (n < 1 || offset > total - n) {
            throw new MalformedExtensionException("an evidence fragment lies outside its evidence", true);
        }
        if (peer == null) {
            peer = new byte[total];
            peerHave = new BitSet(total);
        } else if (peer.length != total) {
            throw new MalformedExtensionException("the peer's evidence fragments disagree on its length", true);
        }
        byte[] fragment = new byte[n];
        b.get(fragment);
        for (int i = 0; i < n; i++) {
            int at = offset + i;
            if (peerHave.get(at)) {
                if (peer[at] != fragment[i]) {
                    throw new MalformedExtensionException("the peer resent its evidence with other bytes", true);
                }
            } else {
                peer[at] = fragment[i];
                peerHave.set(at);
                peerHaveCount++;
            }
        }
        if (peerHaveCount == total) {
            peerComplete = true;
            acknowledge = true;
        }
    }

    private static ByteBuffer header(int type, int total, int offset, int fragment) {
        ByteBuffer b = ByteBuffer.allocate(HEADER + fragment);
        b.put((byte) VERSION).put((byte) type).putShort((short) total).putShort((short) offset);
        return b;
    }

    @Override
    public String toString() {
        return "DtlsEvidenceExchange[ours " + (ours == null ? "none" : oursReceived ? "acknowledged" : "pending")
                + ", " + progress() + "]";
    }
}
