package io.tpmphone.softphone.media;

import ch.imvs.sdes4j.srtp.SrtpCryptoAttribute;
import org.jitsi.impl.neomedia.transform.sdes.SDesControlImpl;
import org.jitsi.impl.neomedia.transform.sdes.SDesTransformEngine;
import org.jitsi.service.neomedia.event.SrtpListener;
import org.jitsi.utils.MediaType;

/**
 * An SDES control keyed with the master keys we agreed in SDP — ours (from the sealed keystore) for sending, the
 * peer's for receiving — instead of keys libjitsi would generate (its responder path always makes its own). It must
 * be keyed before the stream is created: the stream asks for its transform engine while it is built.
 */
final class SuppliedKeySDesControl extends SDesControlImpl {
    private final SrtpCryptoAttribute in;
    private final SrtpCryptoAttribute out;

    SuppliedKeySDesControl(SrtpCryptoAttribute in, SrtpCryptoAttribute out) {
        this.in = in;
        this.out = out;
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

    @Override
    protected SDesTransformEngine createTransformEngine() {
        return new SDesTransformEngine(in, out);
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
