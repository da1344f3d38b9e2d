package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.media.AudioSession;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A call's audio as SDP describes it: the session is opened (its RTP port bound) when the offer or answer is written,
 * described with our key, and started — SRTP with our key out and the peer's in, to the peer's SDP address — once the
 * call is established. Without a {@link SipPhone.Media} the phone does signalling only (port 9 in the SDP).
 * Thread-safe.
 */
final class CallMedia {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final SipPhone.Config config;
    private final SipPhone.Media media;
    private final Clock clock;

    CallMedia(SipPhone.Config config, SipPhone.Media media, Clock clock) {
        this.config = config;
        this.media = media;
        this.clock = clock;
    }

    /** Opens the call's audio session (binds its RTP and RTCP ports), when the phone has media. */
    void open(Call call) throws IOException {
        if (media != null) {
            call.audio(media.open(call.callId()));
        }
    }

    /** The payload types we offer, in order of preference. */
    List<Integer> offered() {
        return media == null ? Sdp.AUDIO_PAYLOADS : media.payloadTypes();
    }

    /** The codec an answer to {@code offer} takes (RFC 3264 §6.1), as the offerer numbered it; empty if none. */
    Optional<Integer> choose(Sdp offer) {
        return Sdp.choose(offer, offered());
    }

    /** Our SDP: our media address and RTP port, {@code payloads}, our SDES key, {@code direction}. */
    byte[] sdp(Call call, SdesCrypto local, List<Integer> payloads, String direction) {
        int port = call.audio().map(AudioSession::localPort).orElse(9);
        return new Sdp(config.address().getHostAddress(), port, payloads, List.of(local), direction)
                .encode(config.user(), clock.millis()).getBytes(StandardCharsets.US_ASCII);
    }

    /**
     * Our DTLS-SRTP SDP: {@code UDP/TLS/RTP/SAVP}, our media address and RTP port (RTCP multiplexed on it),
     * {@code payloads}, our certificate's fingerprint and {@code a=setup} — and no key: the keys come from the
     * handshake with the far end.
     */
    byte[] dtlsSdp(Call call, Sdp.DtlsAttributes ours, List<Integer> payloads) {
        return dtlsSdp(call, ours, payloads, "sendrecv");
    }

    /** As above, with {@code direction} (hold and resume of a DTLS-SRTP call). */
    byte[] dtlsSdp(Call call, Sdp.DtlsAttributes ours, List<Integer> payloads, String direction) {
        int port = call.audio().map(AudioSession::localPort).orElse(9);
        return Sdp.dtlsSrtp(config.address().getHostAddress(), port, payloads, ours).withDirection(direction)
                .encode(config.user(), clock.millis()).getBytes(StandardCharsets.US_ASCII);
    }

    /** As above, {@code sendrecv}: an offer (PCMU and PCMA) or an answer (the codec chosen). */
    byte[] sdp(Call call, SdesCrypto local, List<Integer> payloads) {
        return sdp(call, local, payloads, "sendrecv");
    }

    /**
     * Starts SRTP audio once the call is established: our key out, the peer's in, to the peer's SDP address. Returns
     * whether it started (a call without media, or whose start failed, has none).
     */
    boolean start(Call call) {
        Optional<AudioSession> audio = call.audio();
        Optional<Sdp> remote = call.remoteSdp();
        Optional<SdesCrypto> local = call.localCrypto();
        if (audio.isEmpty() || remote.isEmpty() || local.isEmpty() || remote.get().cryptos().isEmpty()) {
            return false;
        }
        try {
            audio.get().start(local.get(), remote.get().cryptos().get(0),
                    new InetSocketAddress(InetAddress.getByName(remote.get().address()), remote.get().port()),
                    call.payloadType());
            return true;
        } catch (IOException | RuntimeException e) {
            if (audio.get().isClosed()) {
                // the call ended as its audio was to start (our user hung up as its 2xx or ACK came): its end
                // closed the session, and ends the call in SIP
                LOG.debug("call {}: its audio was closed before it started", UntrustedText.forTerminal(call.callId(),
                        200));
                return false;
            }
            LOG.warn("call {}: starting SRTP audio failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                    UntrustedText.forTerminal(e.toString()));
            return false;
        }
    }
}
