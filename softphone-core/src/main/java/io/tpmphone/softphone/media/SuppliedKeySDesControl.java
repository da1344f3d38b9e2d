package io.tpmphone.softphone.media;

import ch.imvs.sdes4j.srtp.SrtpCryptoAttribute;
import ch.imvs.sdes4j.srtp.SrtpKeyParam;
import java.util.Arrays;
import org.jitsi.impl.neomedia.transform.PacketTransformer;
import org.jitsi.impl.neomedia.transform.sdes.SDesControlImpl;
import org.jitsi.impl.neomedia.transform.sdes.SDesTransformEngine;
import org.jitsi.service.neomedia.event.SrtpListener;
import org.jitsi.utils.MediaType;

/**
 * An SDES control keyed with the master keys we agreed in SDP — ours (from the sealed keystore) for sending, the
 * peer's for receiving — instead of keys libjitsi would generate (its responder path always makes its own).
 *
 * <p>The transform engine is built here, at once, and then the attributes' inline key bytes are wiped: sdes4j's
 * {@code SrtpKeyParam} keeps the caller's array (no copy) and libjitsi copies the key only when it builds the engine,
 * so a key wiped before that would silently key SRTP with zeros (which both ends of a libjitsi-to-libjitsi call would
 * "agree" on). A second engine cannot be built from wiped keys: {@link #createTransformEngine()} refuses.
 */
final class SuppliedKeySDesControl extends SDesControlImpl {
    private final SrtpCryptoAttribute in;
    private final SrtpCryptoAttribute out;
    private final SendGate gate;

    /** Takes ownership of the attributes: their key arrays are zeroed once the engine holds its own copies. */
    SuppliedKeySDesControl(SrtpCryptoAttribute in, SrtpCryptoAttribute out) {
        this.in = in;
        this.out = out;
        try {
            GatedEngine engine = new GatedEngine(in, out);
            transformEngine = engine;
            gate = engine.gate;
        } finally {
            wipe(in);
            wipe(out);
        }
    }

    /** The gate at the end of this control's outgoing RTP path (see {@link SendGate}). */
    SendGate gate() {
        return gate;
    }

    /** libjitsi's SDES engine, its RTP transformer behind our {@link SendGate}; SRTCP as it is. */
    private static final class GatedEngine extends SDesTransformEngine {
        final SendGate gate = new SendGate(super::getRTPTransformer);

        GatedEngine(SrtpCryptoAttribute in, SrtpCryptoAttribute out) {
            super(in, out);
        }

        @Override
        public PacketTransformer getRTPTransformer() {
            return gate; // also once cleaned up: the gate then drops, rather than libjitsi's chain skipping SRTP
        }
    }

    private static void wipe(SrtpCryptoAttribute a) {
        for (SrtpKeyParam p : a.getKeyParams()) {
            Arrays.fill(p.getKey(), (byte) 0);
        }
    }

    @Override
    public SrtpCryptoAttribute getInAttribute() {
        return in;
    }

    @Override
    public SrtpCryptoAttribute getOutAttribute() {
        return out;
    }

    @Override
    public SrtpCryptoAttribute[] getInitiatorCryptoAttributes() {
        return new SrtpCryptoAttribute[] {out};
    }

    /** Only reached when libjitsi cleaned the engine up and wants another: the keys are gone by then. */
    @Override
    protected SDesTransformEngine createTransformEngine() {
        throw new IllegalStateException("this call's SRTP keys were wiped once its engine was built; a new stream"
                + " needs a new SuppliedKeySDesControl");
    }

    @Override
    public void start(MediaType mediaType) {
        SrtpListener l = getSrtpListener();
        if (l != null) {
            l.securityNegotiationStarted(mediaType, this);
            l.securityTurnedOn(mediaType, in.getCryptoSuite().encode(), this);
        }
    }
}
