package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.AgentBroker;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.HandshakeGuard;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.sip.Dialog;
import javax.sip.SipException;
import javax.sip.SipFactory;
import javax.sip.SipProvider;
import javax.sip.SipStack;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The SIP user agent of the measured softphone: JAIN-SIP over UDP, TCP and attested TLS 1.3
 * ({@link AttestedNetworkLayer}). Calls go directly UA-to-UA over {@code sips:}, or through a registrar, with SDES-SRTP
 * keys from the sealed keystore, and every call is decided by the {@link CallPolicy} on the peer's integrity level
 * before anything else (docs/softphone.md, "What a call goes through"; "Parts of the SIP stack" names the classes
 * that do each part):
 *
 * <ul>
 *   <li>incoming INVITE: the level of the connection it arrived on (TLS: the peer's attestation; UDP/TCP:
 *       UNATTESTED), a From identity that differs from the attested host → 403, the policy → 403 with a
 *       {@code Warning} naming both levels (or accepted, possibly RESTRICTED), an offer without SDES → 488, a
 *       replayed SDES key → 488; then 180, 200 with our key ({@link IncomingCalls});</li>
 *   <li>outgoing INVITE: the TLS connection's attestation is checked by the policy for the destination right after
 *       the handshake, before the INVITE (and our key) is written; a refusal ends the connection
 *       ({@link OutgoingCalls}, {@link ConnectionAttestation});</li>
 *   <li>OPTIONS → 200; BYE → 200; CANCEL → 200 and 487; other methods → 405.</li>
 * </ul>
 * What peers can make it hold is bounded ({@link Limits}), and calls nobody ends are ended: no ACK, no media
 * ({@link CallTimers}). Thread-safe. {@link Listener} callbacks run on JAIN-SIP's threads and the phone's timer thread.
 */
public final class SipPhone implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    /**
     * How a call's media is keyed (docs/softphone.md, "Media"): {@link #SDES} keys from the sealed keystore in the SDP
     * ({@code a=crypto}; whoever relays the SDP reads them), {@link #DTLS_SRTP} keys from a DTLS handshake on the media
     * path with the far end, which also carries both sides' evidence end to end ({@code a=fingerprint},
     * {@code a=setup}; no key in the SDP), and {@link #AUTO}: DTLS-SRTP when the far end is not reached over one
     * attested TLS hop — a call placed through a registrar — and SDES for a direct call over attested TLS. An incoming
     * offer is answered in its own kind, if the mode allows it ({@code AUTO} takes both).
     */
    public enum MediaMode {
        SDES, DTLS_SRTP, AUTO;

        /** Parses {@code sdes}, {@code dtls-srtp} or {@code auto}. */
        public static MediaMode parse(String s) {
            return switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "sdes" -> SDES;
                case "dtls-srtp" -> DTLS_SRTP;
                case "auto" -> AUTO;
                default -> throw new IllegalArgumentException("a media mode is sdes, dtls-srtp or auto");
            };
        }
    }

    /**
     * Where the phone listens and who it is. {@code host} is its attested host name (its device certificate CN);
     * {@code mediaMode} how calls are keyed.
     */
    public record Config(String user, String host, InetAddress address, int tlsPort, int tcpPort, int udpPort,
                         Duration setupTimeout, MediaMode mediaMode) {
        public Config {
            Objects.requireNonNull(user, "user");
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(address, "address");
            Objects.requireNonNull(setupTimeout, "setupTimeout");
            Objects.requireNonNull(mediaMode, "mediaMode");
        }

        /** A phone in {@link MediaMode#AUTO}. */
        public Config(String user, String host, InetAddress address, int tlsPort, int tcpPort, int udpPort,
                      Duration setupTimeout) {
            this(user, host, address, tlsPort, tcpPort, udpPort, setupTimeout, MediaMode.AUTO);
        }

        /** This configuration with another media mode. */
        public Config withMediaMode(MediaMode mode) {
            return new Config(user, host, address, tlsPort, tcpPort, udpPort, setupTimeout, mode);
        }
    }

    /**
     * How much state peers can make this phone hold, whatever they send (docs/softphone.md, "Bounds"). An INVITE beyond
     * {@code maxSettingUp} calls being set up, or {@code maxCalls} in progress, gets {@code 503} with
     * {@code Retry-After} before any media or key is allocated, and so does one beyond a source's share (half of
     * each); refused and ended calls leave the table at once and the last {@code endedHistory} of them are kept for
     * the user; TLS handshakes are bounded by {@code tlsHandshakes}. A TCP or TLS connection on which no SIP message
     * arrived for {@code idleTimeout}, or one accepted more than {@code maxAge} ago, is closed unless it carries a call
     * in progress or a registration; at most {@code connectionsPerSource} accepted connections are open per source (an
     * IPv4 address, an IPv6 /64) and {@code connections} overall. What the phone opens itself is bounded by
     * {@code outgoing}. A call we answered whose ACK has not come {@code ackTimeout} after our 200 (64·T1, RFC 3261
     * §13.3.1.4), and an established call not on hold on whose media sockets nothing arrived for {@code mediaSilence},
     * are hung up with a BYE and their media released.
     */
    public record Limits(int maxCalls, int maxSettingUp, int endedHistory, HandshakeGuard.Limits tlsHandshakes,
                         Duration idleTimeout, Duration maxAge, int connectionsPerSource, int connections,
                         Outgoing outgoing, Duration ackTimeout, Duration mediaSilence) {
        /**
         * 32 calls in progress, 16 being set up (a person answers a handful of calls; a softphone that auto-answers
         * still settles each within its setup timeout), the last 100 ended calls, {@link
         * HandshakeGuard.Limits#DEFAULTS} for TLS; connections idle for 5 minutes closed (a registered client behind
         * a NAT sends keep-alives every two minutes or so, RFC 5626 §4.4.1, and re-registers well within 10 minutes),
         * those without a call or a registration after 10 minutes at most, 16 accepted ones per source and 256 in all
         * (each costs JAIN-SIP a thread); {@link Outgoing#DEFAULTS}; the ACK within 64·T1 = 32 s (T1 = 500 ms); media
         * silent for 30 s (RTCP alone arrives every 5 s or so while a peer's media runs, even when it sends no RTP
         * during silence).
         */
        public static final Limits DEFAULTS = new Limits(32, 16, 100, HandshakeGuard.Limits.DEFAULTS,
                Duration.ofMinutes(5), Duration.ofMinutes(10), 16, 256, Outgoing.DEFAULTS, Duration.ofSeconds(32),
                Duration.ofSeconds(30));

        public Limits {
            Objects.requireNonNull(tlsHandshakes, "tlsHandshakes");
            Objects.requireNonNull(idleTimeout, "idleTimeout");
            Objects.requireNonNull(maxAge, "maxAge");
            Objects.requireNonNull(outgoing, "outgoing");
            Objects.requireNonNull(ackTimeout, "ackTimeout");
            Objects.requireNonNull(mediaSilence, "mediaSilence");
            if (maxSettingUp < 1 || maxCalls < maxSettingUp || endedHistory < 0) {
                throw new IllegalArgumentException("limits need 1 <= maxSettingUp <= maxCalls and endedHistory >= 0,"
                        + " got maxCalls " + maxCalls + ", maxSettingUp " + maxSettingUp + ", endedHistory "
                        + endedHistory);
            }
            if (idleTimeout.isNegative() || idleTimeout.isZero() || maxAge.compareTo(idleTimeout) < 0) {
                throw new IllegalArgumentException("connections need 0 < idle timeout <= maximum age, got "
                        + idleTimeout + " and " + maxAge);
            }
            if (connectionsPerSource < 1 || connections < connectionsPerSource) {
                throw new IllegalArgumentException("limits need 1 <= connectionsPerSource <= connections, got "
                        + connectionsPerSource + " and " + connections);
            }
            if (ackTimeout.toMillis() < 1 || mediaSilence.toMillis() < 1) {
                throw new IllegalArgumentException("the ACK timeout and the media silence limit must be at least"
                        + " 1 ms, got " + ackTimeout + " and " + mediaSilence);
            }
        }

        /**
         * What the phone opens itself, always to destinations it chose: at most {@code connections} open at once, and
         * TLS handshakes as a client (a TPM signature each, and a quote when the peer asks) at most {@code handshakes}
         * at once, refilled at {@code handshakesPerSecond}.
         */
        public record Outgoing(int connections, int handshakes, double handshakesPerSecond) {
            /**
             * 64 connections (two per call in progress: its first hop, and its peer's contact when that differs); 16
             * handshakes at once, then 2 a second (a person places a call every few seconds at most; a registrar or a
             * peer that drops the phone's connection again and again costs a TPM signature twice a second at most).
             */
            public static final Outgoing DEFAULTS = new Outgoing(64, 16, 2.0);

            public Outgoing {
                if (connections < 1 || handshakes < 1 || !(handshakesPerSecond > 0)) {
                    throw new IllegalArgumentException("outgoing limits need connections >= 1, handshakes >= 1 and a"
                            + " positive rate, got " + connections + ", " + handshakes + ", " + handshakesPerSecond);
                }
            }
        }

        /** These limits with other bounds on calls. */
        public Limits withCalls(int maxCalls, int maxSettingUp, int endedHistory) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, maxAge,
                    connectionsPerSource, connections, outgoing, ackTimeout, mediaSilence);
        }

        /** These limits with other bounds on TLS handshakes. */
        public Limits withTlsHandshakes(HandshakeGuard.Limits tls) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tls, idleTimeout, maxAge, connectionsPerSource,
                    connections, outgoing, ackTimeout, mediaSilence);
        }

        /** These limits with other bounds on accepted connections (the maximum age at least the idle timeout). */
        public Limits withConnections(Duration idle, int perSource, int total) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idle,
                    maxAge.compareTo(idle) < 0 ? idle : maxAge, perSource, total, outgoing, ackTimeout, mediaSilence);
        }

        /** These limits with another maximum age of connections without a call or a registration. */
        public Limits withMaxAge(Duration age) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, age,
                    connectionsPerSource, connections, outgoing, ackTimeout, mediaSilence);
        }

        /** These limits with other bounds on what the phone opens itself. */
        public Limits withOutgoing(Outgoing o) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, maxAge,
                    connectionsPerSource, connections, o, ackTimeout, mediaSilence);
        }

        /** These limits with other clocks for calls nobody ends: the wait for an ACK, and media silence. */
        public Limits withCallTimers(Duration ack, Duration silence) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, maxAge,
                    connectionsPerSource, connections, outgoing, ack, silence);
        }
    }

    /**
     * Media keys: from the agent broker in the softphone (the sealed keystore). Each method must return or throw
     * within a bounded time: an incoming call's final answer waits for {@link #srtpKey} — the path making the 200
     * holds the INVITE's one final answer, and the setup deadline that comes meanwhile leaves the call to it — so a
     * key that never comes would leave the INVITE unanswered. {@link #fromBroker}'s are bounded by the broker's
     * request timeout ({@link AgentBroker#connect(java.nio.file.Path, String, Duration)}, by default
     * {@link AgentBroker#DEFAULT_TIMEOUT}).
     */
    public interface Keys {
        /** A fresh SRTP master key and salt of {@code suite} for {@code callId}, minted by the sealed keystore. */
        SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException;

        /**
         * Refuses a peer's SDES key seen before — a replayed offer or answer — with a
         * {@link io.tpmphone.softphone.BrokerRefusedException} (reason {@code SEEN_BEFORE}).
         */
        void checkOffered(byte[] key, byte[] salt, String callId) throws IOException;

        /** Keys and replay checks from the sealed keystore through the agent broker. */
        static Keys fromBroker(AgentBroker broker) {
            Objects.requireNonNull(broker, "broker");
            return new Keys() {
                @Override
                public SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                    return broker.srtpKey(suite, callId);
                }

                @Override
                public void checkOffered(byte[] key, byte[] salt, String callId) throws IOException {
                    broker.checkOffered(key, salt, callId);
                }
            };
        }
    }

    /** Opens a call's audio (binds its RTP port); {@code null} media means signalling only. */
    public interface Media {
        io.tpmphone.softphone.media.AudioSession open(String callId) throws IOException;

        /**
         * The payload types this phone offers, in order of preference: PCMU and PCMA ({@link Sdp#AUDIO_PAYLOADS}), or
         * with real audio Opus first ({@link Sdp#OPUS_FIRST}).
         */
        default List<Integer> payloadTypes() {
            return Sdp.AUDIO_PAYLOADS;
        }
    }

    /**
     * Whether a person answers a ringing call: called once an incoming call passed attestation, identity, policy and
     * the offer checks and rang ({@code 180}); the phone answers ({@code 200}) or declines ({@code 603}) when the
     * returned stage completes. A call nobody decides on ends at the setup timeout ({@code 480}), and a caller that
     * cancels gets {@code 487}. {@link #AUTOMATIC} answers at once — auto-answer is a choice, never a fallback.
     * Implementations must not block; they may complete the stage from any thread.
     */
    @FunctionalInterface
    public interface AnswerDecision {
        /** What the person decided. */
        enum Answer { ANSWER, DECLINE }

        /** Answers every call the policy accepted, at once. */
        AnswerDecision AUTOMATIC = call -> java.util.concurrent.CompletableFuture.completedFuture(Answer.ANSWER);

        /** {@code call} rings; the stage completes with the person's answer. */
        java.util.concurrent.CompletionStage<Answer> ring(Call call);
    }

    /** What the user sees. */
    public interface Listener {
        /**
         * A call's policy decision (both directions), with the peer's level: for the user and the audit log. A
         * DTLS-SRTP call has two: on its first hop, then on its far end ({@link CallPolicy.Decision#endToEnd()}),
         * both before the callee's phone rings.
         */
        default void decided(Call call, CallPolicy.Decision decision) {
        }

        /**
         * An incoming call is ringing (accepted by policy): {@link Call#peer()} is the first hop's level and, for a
         * DTLS-SRTP call, {@link Call#farEnd()} the caller's, established end to end.
         */
        default void ringing(Call call) {
        }

        /**
         * A call we placed is ringing at the far end (its {@code 180}); for a DTLS-SRTP call {@link Call#farEnd()}
         * is the callee's level, established end to end before it rang, beside the hop's in {@link Call#peer()}.
         */
        default void remoteRinging(Call call) {
        }

        /** A call ended or was refused; {@link Call#reason()} says why. */
        default void ended(Call call) {
        }

        /** A registration changed state (registered, refreshed, failed or ended); its reason says why. */
        default void registration(Registration registration) {
        }
    }

    private final Signalling sip;
    private final String stackName;
    private final SipStack stack;
    private final ScheduledThreadPoolExecutor timers;
    /** Calls in progress and a bounded history of ended ones, with each call's registrar account. */
    private final CallTable calls;
    private final CallMedia media;
    private final Listener listener;
    private final ConnectionAttestation attestation;
    private final Registrations registrations;
    private final OutgoingCalls outgoing;
    /** Every TCP and TLS connection: capped per source and overall, closed when idle. */
    private final ConnectionTable connectionTable;
    /** The bounds on TLS handshakes of accepted connections. */
    private final HandshakeGuard guard;
    /** What pays for refusals over UDP, whoever makes them. */
    private final UdpRefusalBudget udpRefusals;
    /** DTLS-SRTP calls: the bounded threads of their handshakes and evidence exchanges. */
    private final EndToEndCalls endToEnd;
    private final java.util.concurrent.atomic.AtomicReference<AnswerDecision> answers;

    SipPhone(PhoneParts parts, Signalling sip, SipStack stack, ScheduledThreadPoolExecutor timers, CallTable calls,
                     CallMedia media, Listener listener, ConnectionAttestation attestation, Registrations registrations,
                     OutgoingCalls outgoing, EndToEndCalls endToEnd) {
        this.endToEnd = endToEnd;
        this.sip = sip;
        this.stackName = parts.stackName;
        this.stack = stack;
        this.timers = timers;
        this.calls = calls;
        this.media = media;
        this.listener = listener;
        this.attestation = attestation;
        this.registrations = registrations;
        this.outgoing = outgoing;
        this.connectionTable = parts.connections;
        this.guard = parts.guard;
        this.udpRefusals = parts.udpRefusals;
        this.answers = parts.answers;
    }

    /**
     * Who decides whether a ringing call is answered from now on (default {@link AnswerDecision#AUTOMATIC}): a ring
     * screen where a person answers or declines.
     */
    public void answerWith(AnswerDecision decision) {
        answers.set(java.util.Objects.requireNonNull(decision, "decision"));
    }

    /** Starts the stack and listens on the configured ports (TLS attested; UDP/TCP plain). */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Clock clock) throws PhoneException {
        return start(config, tls, policy, keys, listener, null, clock);
    }

    /** As above, with SRTP audio for every established call. */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Media media, Clock clock) throws PhoneException {
        return start(config, tls, policy, keys, listener, media, clock, Limits.DEFAULTS);
    }

    /** As above, with the given bounds on what peers can make the phone hold. */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Media media, Clock clock, Limits limits) throws PhoneException {
        Objects.requireNonNull(config, "config");
        Objects.requireNonNull(tls, "tls");
        Objects.requireNonNull(policy, "policy");
        Objects.requireNonNull(keys, "keys");
        Objects.requireNonNull(listener, "listener");
        Objects.requireNonNull(clock, "clock");
        Objects.requireNonNull(limits, "limits");
        PhoneParts parts = new PhoneParts(config, limits, clock);
        AttestedNetworkLayer.register(parts.stackName, new AttestedNetworkLayer.Stack(tls, parts, parts.failures,
                parts.guard, parts.connections, parts::chose,
                new TokenBucket(clock, limits.outgoing().handshakes(), limits.outgoing().handshakesPerSecond()),
                parts.udpRefusals, clock));
        SipFactory factory = JainSipStack.factory();
        SipStack stack;
        try {
            stack = JainSipStack.create(factory, parts.stackName);
        } catch (javax.sip.PeerUnavailableException e) {
            AttestedNetworkLayer.unregister(parts.stackName);
            throw new PhoneException(PhoneException.Code.CANNOT_START, "cannot create the SIP stack: "
                    + e.getMessage(), e);
        }
        ScheduledThreadPoolExecutor timers = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "sip-timers-" + config.host());
            t.setDaemon(true);
            return t;
        });
        // a cancelled deadline must not keep its call in the queue until it would have fired
        timers.setRemoveOnCancelPolicy(true);
        try {
            SipProvider provider = JainSipStack.listen(stack, config);
            SipPhone phone = parts.assemble(factory, stack, provider, timers, tls, policy, keys, listener, media);
            stack.start();
            LOG.info("SIP phone {}@{} listening on {} (TLS {}, TCP {}, UDP {})", config.user(), config.host(),
                    config.address().getHostAddress(), config.tlsPort(), config.tcpPort(), config.udpPort());
            return phone;
        } catch (SipException | RuntimeException e) {
            timers.shutdownNow();
            JainSipStack.stop(stack);
            AttestedNetworkLayer.unregister(parts.stackName);
            throw new PhoneException(PhoneException.Code.CANNOT_START, "cannot start the SIP phone on "
                    + config.address().getHostAddress() + ": " + Signalling.rootMessage(e), e);
        }
    }

    public Config config() {
        return sip.config;
    }

    /** Our address of record, {@code sips:user@host}. */
    public String uri() {
        return "sips:" + sip.config.user() + "@" + sip.config.host();
    }

    /**
     * Calls {@code target} (e.g. {@code sips:bob@bob}) at {@code address:port} over attested TLS. Returns at once; the
     * call's {@link Call#settled()} completes when it is established or refused (with the reason). A call that cannot
     * be placed (a malformed target, the phone full) is returned refused, saying why.
     */
    public Call call(String target, InetSocketAddress next) {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(next, "next");
        return outgoing.place(target, true, next, "tls", uri(), null);
    }

    /**
     * Calls {@code target} through the registrar of {@code registration} (its outbound proxy), as that registration's
     * address of record, answering the proxy's digest challenge with its credentials. The first hop is the proxy: over
     * TLS it is rated by its handshake (an ordinary proxy is {@code UNATTESTED}) and the call policy for
     * {@code target} decides on that, before the INVITE is written.
     */
    public Call call(String target, Registration registration) {
        Objects.requireNonNull(target, "target");
        Registration.Account a = registration.account();
        return outgoing.place(target, false, a.registrar(), a.transport(), a.aor(), a);
    }

    /**
     * Ends an established call with BYE, or one we placed that is being set up with CANCEL once a provisional answer
     * came (RFC 3261 §9.1: before one, the CANCEL waits for the first provisional answer; a 2xx that crosses it is
     * acknowledged and ended with a BYE). An incoming call hung up before our 200 gets {@code 480} to its INVITE —
     * also while our 200 is being made (the path making it sends the 480 instead); one hung up once our 200 is on its
     * way gets a BYE when its ACK comes (RFC 3261 §15). A call whose 2xx or ACK is being handled as it is hung up is
     * ended with a BYE by that handling ({@link Call#established()} fails for an ended call).
     */
    public void hangUp(Call call) throws PhoneException {
        Optional<Dialog> dialog = call.dialog();
        boolean early = dialog.isEmpty() || dialog.get().getState() == null;
        // one step: a call not yet established ends here; one established meanwhile is hung up with a BYE below
        if (call.abandon(early ? Call.HUNG_UP + " before the call was set up" : Call.HUNG_UP)) {
            outgoing.cancelAfterEnd(call);
            // an incoming call hung up before our 200 (before it rang, too: a DTLS-SRTP call being appraised) gets
            // its INVITE's final answer; a ringing one has it from its answer decision (480) already
            sip.answerIfUnanswered(call, Response.TEMPORARILY_UNAVAILABLE, "hung up");
            listener.ended(call);
            return;
        }
        Optional<Dialog> confirmed = call.dialog().or(() -> dialog); // established since the look above, too
        if (call.state() == Call.State.ESTABLISHED && confirmed.isPresent()) {
            try {
                Request bye = confirmed.get().createRequest(Request.BYE);
                confirmed.get().sendRequest(sip.provider.getNewClientTransaction(bye));
            } catch (SipException e) {
                call.ended("hung up (the BYE could not be sent: " + Signalling.rootMessage(e) + ")");
                listener.ended(call);
                throw new PhoneException(PhoneException.Code.CANNOT_SEND, "cannot send the BYE of call "
                        + call.callId() + ": " + Signalling.rootMessage(e), e);
            }
        }
        if (call.ended(Call.HUNG_UP)) {
            listener.ended(call);
        }
    }

    /**
     * Puts an established call on hold ({@code hold}: re-INVITE with {@code a=sendonly}) or resumes it
     * ({@code a=sendrecv}), keeping the call's SDES keys. The answer arrives asynchronously; {@link Call#held()}
     * follows it.
     */
    public void hold(Call call, boolean hold) throws PhoneException {
        boolean dtls = call.dtls().isPresent() && call.remoteSdp().flatMap(Sdp::dtls).isPresent();
        if (call.state() != Call.State.ESTABLISHED || call.dialog().isEmpty()
                || (call.localCrypto().isEmpty() && !dtls)) {
            throw new PhoneException(PhoneException.Code.WRONG_STATE, "only an established call can be put on hold;"
                    + " call " + call.callId() + " is " + call.state());
        }
        Dialog dialog = call.dialog().get();
        try {
            Request reinvite = dialog.createRequest(Request.INVITE);
            reinvite.addHeader(sip.contact(call.transport()));
            // a DTLS-SRTP call re-offers its association as it stands (same fingerprint, port, role): kept
            reinvite.setContent(dtls ? media.dtlsSdp(call, endToEnd.ours(IncomingCalls.ourRole(
                    call.remoteSdp().get())), List.of(call.payloadType()), hold ? "sendonly" : "sendrecv")
                    : media.sdp(call, call.localCrypto().get(), List.of(call.payloadType()),
                    hold ? "sendonly" : "sendrecv"), sip.headers.createContentTypeHeader("application", "sdp"));
            dialog.sendRequest(sip.provider.getNewClientTransaction(reinvite));
        } catch (ParseException | SipException | java.io.IOException e) {
            throw new PhoneException(PhoneException.Code.CANNOT_SEND, "cannot send the re-INVITE of call "
                    + call.callId() + ": " + Signalling.rootMessage(e), e);
        }
    }

    /**
     * Registers our contact for {@code account}'s address of record. Returns at once; {@link
     * Registration#firstOutcome()} completes when the registrar accepted (or refused) it. A digest challenge is
     * answered with the account's credentials (MD5 or SHA-256, the registrar's topmost that we support); the binding is
     * refreshed at half the granted time; a failure is retried after 5 s, doubling up to 60 s.
     */
    public Registration register(Registration.Account account) {
        Objects.requireNonNull(account, "account");
        return registrations.register(account);
    }

    /** Removes our binding (REGISTER with Expires 0) and stops refreshing; waits at most {@code timeout}. */
    public void unregister(Registration reg, Duration timeout) throws InterruptedException {
        registrations.unregister(reg, timeout);
    }

    /**
     * The calls in progress (being set up or established), then the last {@link Limits#endedHistory()} refused or
     * ended ones, oldest first — incoming TLS connections whose handshake failed with a TLS alert among them.
     */
    public Collection<Call> calls() {
        return calls.all();
    }

    /** A call in progress, or one of the recent ended ones, by its Call-ID. */
    public Optional<Call> callById(String callId) {
        return calls.any(callId);
    }

    /** Waits for a call to settle (established, refused or ended) at most {@link Config#setupTimeout()}. */
    public Call await(Call call) throws InterruptedException {
        try {
            return call.settled().get(sip.config.setupTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw new IllegalStateException("a call's future never fails", e);
        } catch (TimeoutException e) {
            call.ended("no final answer within " + sip.config.setupTimeout().toSeconds() + " s");
            listener.ended(call);
            return call;
        }
    }

    /**
     * What the phone holds for its calls and connections, and what JAIN-SIP holds for it (server transactions,
     * dialogs); for diagnostics and the bounds tests.
     */
    record Held(int callsInProgress, int callsSettingUp, int endedCalls, int hopsSettingUp, int tlsConnections,
                int registrations, int sipServerTransactions, int sipDialogs, long udpAnswersWithheld,
                int connectionsOpen, long connectionsClosedIdle, int tlsHandshakesInProgress,
                long udpRefusalsWithheld) {
    }

    Held held() {
        CallTable.Counts c = calls.counts();
        gov.nist.javax.sip.stack.SIPTransactionStack jain = (gov.nist.javax.sip.stack.SIPTransactionStack) stack;
        return new Held(c.active(), c.settingUp(), c.ended(), attestation.hopsSettingUp().size(),
                attestation.openHops(), registrations.all().size(), jain.getServerTransactionTableSize(),
                jain.getDialogs().size(), sip.unansweredTotal(), connectionTable.openCount(),
                connectionTable.closedIdle(), guard.inProgress(), udpRefusals.withheld());
    }

    /** DTLS-SRTP handshake threads busy now (for the bounds tests). */
    int dtlsBusy() {
        return endToEnd.busy();
    }

    /**
     * Calls {@code target} at {@code next} over plain UDP, as a standard phone does (for the tests in this package
     * that answer as a scripted peer; the public calls go over TLS or through a registration).
     */
    Call callOverUdp(String target, InetSocketAddress next) {
        return outgoing.place(target, false, next, "udp", "sip:" + sip.config.user() + "@" + sip.config.host(),
                null);
    }

    /** The stack's connection table (for the bounds tests). */
    ConnectionTable connectionTable() {
        return connectionTable;
    }

    /** The remote addresses of the open TCP and TLS connections (for the bounds tests). */
    List<InetSocketAddress> connectionRemotes() {
        return connectionTable.remotes();
    }

    /** Ends the registrations (at their registrars), the calls in progress and the stack. */
    @Override
    public void close() {
        registrations.close();
        timers.shutdownNow();
        JainSipStack.stop(stack);
        AttestedNetworkLayer.unregister(stackName);
        calls.inProgress().forEach(c -> c.ended("the phone stopped"));
        endToEnd.close();
    }
}
