package io.tpmphone.softphone.media;

import ch.imvs.sdes4j.srtp.SrtpCryptoAttribute;
import ch.imvs.sdes4j.srtp.SrtpCryptoSuite;
import ch.imvs.sdes4j.srtp.SrtpKeyParam;
import io.tpmphone.softphone.SdesCrypto;
import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.Objects;
import org.jitsi.service.neomedia.DefaultStreamConnector;
import org.jitsi.service.neomedia.MediaDirection;
import org.jitsi.service.neomedia.MediaService;
import org.jitsi.service.neomedia.MediaStream;
import org.jitsi.service.neomedia.MediaStreamTarget;
import org.jitsi.service.neomedia.event.SrtpListener;
import org.jitsi.service.neomedia.format.MediaFormat;
import org.jitsi.service.neomedia.stats.MediaStreamStats2;
import org.jitsi.utils.MediaType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One call's audio: Opus/48000, PCMU or PCMA/8000 over SRTP (SDES, AES_CM_128_HMAC_SHA1_80) with libjitsi, our key for
 * sending and the peer's for receiving, both agreed in SDP. The RTP and RTCP sockets are bound when the session is
 * opened, so the port can go into the SDP; {@link #start} begins sending what the {@link AudioDevice} captures (a tone
 * or a WAV file's samples, or the sound server's microphone) and keeping what arrives in a {@link PcmSink} (and playing
 * it on the sound server's speaker). A sound server is connected to only while the call's audio runs.
 * {@link #close()} stops the stream, closes the sound server connection and releases the sockets. Thread-safe.
 */
public final class AudioSession implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AudioSession.class);

    /**
     * RTP statistics, for the caller. {@code packetsSent} are the RTP packets that left encrypted, counted at the
     * last point of our send path; {@code packetsWithheld} the ones stopped there because sending was off (hold,
     * {@code recvonly}, {@code inactive}); received, loss and jitter are libjitsi's receiver statistics.
     */
    public record Stats(long packetsSent, long packetsReceived, long packetsLost, double lossRate,
                        double jitterMs, long packetsWithheld) {
    }

    private final DatagramSocket rtp;
    private final DatagramSocket rtcp;
    /** Datagrams from the far end on either socket (libjitsi reads them through {@link DatagramSocket#receive}). */
    private final java.util.concurrent.atomic.AtomicLong received;
    /** The far end's RTP address once media started; RTCP is on the next port. */
    private final java.util.concurrent.atomic.AtomicReference<InetSocketAddress> remote;
    /** How long opening the sound server's connection and streams may take. */
    static final java.time.Duration SOUND_SERVER_TIMEOUT = java.time.Duration.ofSeconds(5);

    private final AudioDevice audioDevice;
    /** The call this session belongs to, for the sound server's {@link AudioDevice.Access}. */
    private final String callId;
    private boolean accessAcquired;
    /** Whether the microphone is muted: silence is sent instead (the stream and its keys go on). */
    private volatile boolean muted;
    private PcmSink sink = new PcmSink();
    private SoundServerLink soundServer;
    private MediaStream stream;
    /** The last point of the outgoing RTP path, once started: closed while our direction has no "send". */
    private SendGate gate;
    private boolean closed;

    private AudioSession(DatagramSocket rtp, DatagramSocket rtcp, java.util.concurrent.atomic.AtomicLong received,
                         java.util.concurrent.atomic.AtomicReference<InetSocketAddress> remote,
                         AudioDevice audioDevice, String callId) {
        this.callId = callId;
        this.rtp = rtp;
        this.rtcp = rtcp;
        this.received = received;
        this.remote = remote;
        this.audioDevice = audioDevice;
    }

    /** Binds RTP on an even port and RTCP on the next one, on {@code address}; {@code source} is what we send. */
    public static AudioSession open(InetAddress address, short[] source) throws IOException {
        return open(address, new AudioDevice.Tone(source));
    }

    /** Binds RTP on an even port and RTCP on the next one, on {@code address}; {@code device} captures and plays. */
    public static AudioSession open(InetAddress address, AudioDevice device) throws IOException {
        return open(address, device, "call");
    }

    /**
     * As above for call {@code callId}: a sound server's {@link AudioDevice.Access} is acquired for it when the audio
     * starts and released when the session closes.
     */
    public static AudioSession open(InetAddress address, AudioDevice device, String callId) throws IOException {
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(callId, "callId");
        Objects.requireNonNull(device, "device");
        java.util.concurrent.atomic.AtomicLong received = new java.util.concurrent.atomic.AtomicLong();
        java.util.concurrent.atomic.AtomicReference<InetSocketAddress> remote =
                new java.util.concurrent.atomic.AtomicReference<>();
        for (int attempt = 0; attempt < 50; attempt++) {
            DatagramSocket r = new CountingSocket(new InetSocketAddress(address, 0), received, remote);
            int port = r.getLocalPort();
            if (port % 2 != 0 || port == 65_535) {
                r.close();
                continue;
            }
            try {
                DatagramSocket c = new CountingSocket(new InetSocketAddress(address, port + 1), received, remote);
                return new AudioSession(r, c, received, remote, device, callId);
            } catch (java.net.BindException e) {
                r.close();
            }
        }
        throw new IOException("no free RTP/RTCP port pair on " + address);
    }

    /**
     * A socket that counts the datagrams read from it that come from the far end's RTP or RTCP address (set when the
     * media starts): datagrams from anyone else do not keep a silent call alive.
     */
    private static final class CountingSocket extends DatagramSocket {
        private final java.util.concurrent.atomic.AtomicLong received;
        private final java.util.concurrent.atomic.AtomicReference<InetSocketAddress> remote;

        CountingSocket(InetSocketAddress bind, java.util.concurrent.atomic.AtomicLong received,
                       java.util.concurrent.atomic.AtomicReference<InetSocketAddress> remote)
                throws java.net.SocketException {
            super(bind);
            this.received = received;
            this.remote = remote;
        }

        @Override
        public void receive(java.net.DatagramPacket p) throws IOException {
            super.receive(p);
            InetSocketAddress far = remote.get();
            if (far != null && far.getAddress().equals(p.getAddress())
                    && (p.getPort() == far.getPort() || p.getPort() == far.getPort() + 1)) {
                received.incrementAndGet();
            }
        }
    }

    /**
     * How many datagrams arrived on the session's RTP and RTCP sockets so far from the far end's media address:
     * whether media still flows (a peer that stops sending RTP still sends RTCP reports every few seconds while its media runs).
     */
    public long datagramsReceived() {
        return received.get();
    }

    /** The RTP port to put in the SDP. */
    public int localPort() {
        return rtp.getLocalPort();
    }

    /**
     * Starts media towards {@code remoteRtp} (RTCP on the next port): SRTP with {@code ours} for sending and
     * {@code theirs} for receiving. The keys are copied into libjitsi's SRTP contexts.
     */
    public synchronized void start(SdesCrypto ours, SdesCrypto theirs, InetSocketAddress remoteRtp) throws IOException {
        start(ours, theirs, remoteRtp, 0);
    }

    /**
     * As above with the negotiated codec: static payload type 0 (PCMU) or 8 (PCMA), both 8 kHz, or a dynamic one
     * (96-127), which is Opus at 48 kHz (the only dynamic codec the phone offers or accepts).
     */
    public synchronized void start(SdesCrypto ours, SdesCrypto theirs, InetSocketAddress remoteRtp, int payloadType)
            throws IOException {
        start(ours, theirs, remoteRtp, payloadType, false);
    }

    private void start(SdesCrypto ours, SdesCrypto theirs, InetSocketAddress remoteRtp, int payloadType,
                       boolean rtcpMux) throws IOException {
        boolean opus = payloadType >= 96 && payloadType <= 127;
        String encoding = switch (payloadType) {
            case 0 -> "PCMU";
            case 8 -> "PCMA";
            default -> {
                if (!opus) {
                    throw new IllegalArgumentException("payload type " + payloadType + " is not PCMU (0), PCMA (8) or"
                            + " a dynamic one (Opus)");
                }
                yield "opus";
            }
        };
        if (closed || stream != null) {
            throw new IllegalStateException("a session starts once");
        }
        long unfinished = UNFINISHED_CLOSES.get();
        if (unfinished >= maxUnfinishedCloses) {
            throw new IOException("refusing to start the call's audio: " + unfinished + " earlier calls' audio never"
                    + " finished closing (stuck in FMJ, at most " + maxUnfinishedCloses + " are tolerated); the"
                    + " softphone is unhealthy and should be restarted");
        }
        int rate = opus ? 48_000 : 8000;
        HeadlessAudioDevice device;
        if (audioDevice instanceof AudioDevice.SoundServer server) {
            server.access().acquire(callId);
            accessAcquired = true;
            SoundServerLink link = SoundServerLink.connect(server.server(), SOUND_SERVER_TIMEOUT);
            try {
                link.open(server.microphone().orElse(null), server.speaker().orElse(null), rate,
                        SOUND_SERVER_TIMEOUT);
            } catch (IOException | RuntimeException e) {
                link.close();
                throw e;
            }
            soundServer = link;
            sink = new PcmSink(rate, link::play);
            device = new HeadlessAudioDevice(frame -> {
                link.read(frame);
                if (muted) {
                    java.util.Arrays.fill(frame, (byte) 0);
                }
            }, rate, sink);
        } else {
            AudioDevice.Tone tone = (AudioDevice.Tone) audioDevice;
            sink = new PcmSink(rate, null);
            PcmCaptureDevice.FrameSource source = PcmCaptureDevice.tone(tone.samples(), rate);
            device = new HeadlessAudioDevice(frame -> {
                source.fill(frame);
                if (muted) {
                    java.util.Arrays.fill(frame, (byte) 0);
                }
            }, rate, sink);
        }
        remote.set(remoteRtp);
        MediaService ms = MediaEngine.service();
        if (opus) {
            NativeLibraries.ensureLoaded();
        }
        SuppliedKeySDesControl control = new SuppliedKeySDesControl(attribute(theirs), attribute(ours));
        control.setSrtpListener(new Listener());
        gate = control.gate();
        MediaFormat format = opus ? ms.getFormatFactory().createMediaFormat(encoding, 48_000, 2)
                : ms.getFormatFactory().createMediaFormat(encoding, 8000);
        MediaStream s = ms.createMediaStream(rtcpMux ? new DefaultStreamConnector(rtp, rtcp, true)
                : new DefaultStreamConnector(rtp, rtcp), device, control);
        s.setName("audio");
        if (opus) {
            s.addDynamicRTPPayloadType((byte) payloadType, format);
        }
        s.setFormat(format);
        s.setTarget(new MediaStreamTarget(remoteRtp, rtcpMux ? remoteRtp : new InetSocketAddress(
                remoteRtp.getAddress(), remoteRtp.getPort() + 1)));
        s.setDirection(MediaDirection.SENDRECV);
        control.start(MediaType.AUDIO);
        s.start();
        stream = s;
        LOG.info("SRTP audio ({}) {} <-> {} started", encoding, rtp.getLocalSocketAddress(), remoteRtp);
    }

    /**
     * The sdes4j attribute of a key. Its key array is the attribute's own (sdes4j keeps it, uncopied): it must stay
     * intact until the SRTP engine is built, and {@link SuppliedKeySDesControl} wipes it then.
     */
    static SrtpCryptoAttribute attribute(SdesCrypto c) {
        byte[] key = c.masterKey();
        byte[] salt = c.masterSalt();
        byte[] both = Arrays.copyOf(key, key.length + salt.length);
        System.arraycopy(salt, 0, both, key.length, salt.length);
        Arrays.fill(key, (byte) 0);
        Arrays.fill(salt, (byte) 0);
        return new SrtpCryptoAttribute(c.tag(), new SrtpCryptoSuite(c.suite().name()),
                new SrtpKeyParam[] {new SrtpKeyParam(SrtpKeyParam.KEYMETHOD_INLINE, both, 0, 0, 0)}, null);
    }

    /**
     * The DTLS side of this session's RTP socket towards the far end's media address, for the handshake and the
     * evidence exchange that come before SRTP (RTCP is multiplexed on the same port: RFC 5761). Only the far end's
     * DTLS datagrams reach it; the socket stays this session's.
     */
    public synchronized DtlsDatagramTransport dtls(InetSocketAddress remote) {
        if (closed || stream != null) {
            throw new IllegalStateException("DTLS runs before the session's SRTP starts, on an open session");
        }
        return new DtlsDatagramTransport(rtp, remote);
    }

    /**
     * Starts media towards {@code remote} with SRTP keyed by a DTLS-SRTP association (RFC 5764 §4.2: our write key and
     * salt out, the far end's in), RTP and RTCP multiplexed on the RTP port (RFC 5761). The caller obtains
     * {@code keys} only once its call policy accepted the far end ({@code DtlsSrtpAssociation.accept}); this copies
     * them into libjitsi's SRTP contexts and wipes its own copies.
     */
    public synchronized void start(io.tpmphone.tls.SrtpKeys keys, InetSocketAddress remote, int payloadType)
            throws IOException {
        if (keys.profile() != io.tpmphone.tls.SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80) {
            throw new IllegalArgumentException("unsupported SRTP profile " + keys.profile());
        }
        byte[] lk = keys.localKey();
        byte[] ls = keys.localSalt();
        byte[] rk = keys.remoteKey();
        byte[] rs = keys.remoteSalt();
        SdesCrypto out;
        SdesCrypto in;
        try {
            out = SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, lk, ls);
            in = SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, rk, rs);
        } finally {
            Arrays.fill(lk, (byte) 0);
            Arrays.fill(ls, (byte) 0);
            Arrays.fill(rk, (byte) 0);
            Arrays.fill(rs, (byte) 0);
        }
        try {
            start(out, in, remote, payloadType, true);
        } finally {
            out.destroy();
            in.destroy();
        }
    }

    /**
     * Changes the stream's direction: sendrecv, sendonly, recvonly or inactive (hold and resume). Once this returns
     * with a direction without "send", no RTP packet leaves (the {@link SendGate} is closed before libjitsi's send
     * stream is stopped, so what its threads still had in flight is withheld too); RTCP goes on.
     */
    public synchronized void direction(String direction) {
        MediaDirection d = switch (direction) {
            case "sendonly" -> MediaDirection.SENDONLY;
            case "recvonly" -> MediaDirection.RECVONLY;
            case "inactive" -> MediaDirection.INACTIVE;
            default -> MediaDirection.SENDRECV;
        };
        if (stream != null) {
            if (!d.allowsSending()) {
                gate.sending(false);
            }
            stream.setDirection(d);
            if (d.allowsSending()) {
                gate.sending(true);
            }
        }
    }

    /** Mutes or unmutes the microphone: while muted, silence is sent. */
    public void mute(boolean mute) {
        this.muted = mute;
    }

    /** Whether the microphone is muted. */
    public boolean muted() {
        return muted;
    }

    /** What the peer sent, decoded (kept at 8 kHz). */
    public synchronized PcmSink received() {
        return sink;
    }

    /** Packets, loss and jitter; loss and jitter of what we receive are our own RTP receiver statistics. */
    public synchronized Stats stats() {
        if (stream == null) {
            return new Stats(0, 0, 0, 0, 0, 0);
        }
        MediaStreamStats2 st = stream.getMediaStreamStats();
        st.updateStats();
        var receive = st.getReceiveStats();
        return new Stats(gate.sent(), receive.getPackets(), receive.getPacketsLost(), receive.getLossRate(),
                receive.getJitter(), gate.withheld());
    }

    /** Whether {@link #close()} released the session's sockets. */
    public synchronized boolean isClosed() {
        return closed;
    }

    /**
     * How long closing libjitsi's stream may take before the session releases its sockets and the sound server grant
     * without it. FMJ's {@code BasicController.deallocate()} waits, without a deadline, for a state-transition thread
     * to acknowledge its interrupt; a processor left in a transitional state (configuring, realizing) with no such
     * thread to answer — as when a call ends while its stream is still being started on a loaded machine — never
     * returns (a thread dump of a hung {@code SoundServerAudioIT} showed it in {@code AudioSession.close}).
     */
    static final java.time.Duration STREAM_CLOSE_TIMEOUT = java.time.Duration.ofSeconds(5);
    /** Runs on the closing thread before libjitsi's stream is closed (a test hook: it can hang as FMJ did). */
    static volatile Runnable beforeStreamClose = () -> { };
    /** Streams whose close did not finish within {@link #STREAM_CLOSE_TIMEOUT} (for tests and the log). */
    private static final java.util.concurrent.atomic.AtomicLong STUCK_CLOSES =
            new java.util.concurrent.atomic.AtomicLong();
    private static final java.util.concurrent.atomic.AtomicLong CLOSERS = new java.util.concurrent.atomic.AtomicLong();

    /** How many sessions' stream closes ran past {@link #STREAM_CLOSE_TIMEOUT} in this process. */
    static long stuckCloses() {
        return STUCK_CLOSES.get();
    }

    /** Of those, how many have not finished yet. */
    static long unfinishedCloses() {
        return UNFINISHED_CLOSES.get();
    }

    private static final java.util.concurrent.atomic.AtomicLong UNFINISHED_CLOSES =
            new java.util.concurrent.atomic.AtomicLong();
    /**
     * Past this many unfinished closes (each holds a thread, FMJ's threads and a libpulse main loop), the process
     * refuses to start new audio: it is not healthy and should be restarted. Settable by tests only.
     */
    static volatile int maxUnfinishedCloses = 4;

    /**
     * Stops and closes the stream, then the sound server connection, and releases the sockets and the sound server
     * grant. Bounded: libjitsi's close runs on a thread of its own, and when it has not finished within
     * {@link #STREAM_CLOSE_TIMEOUT} the sockets and the grant are released anyway (the agent then cuts the sound
     * server connection) and the sound server connection is closed by that thread once libjitsi lets go of it — never
     * before, since FMJ's renderer may still be writing into it.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        MediaStream s = stream;
        SoundServerLink link = soundServer;
        soundServer = null;
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.atomic.AtomicBoolean late = new java.util.concurrent.atomic.AtomicBoolean();
        long begun = System.nanoTime();
        Thread closer = new Thread(() -> {
            try {
                beforeStreamClose.run();
                if (s != null) {
                    closeStream(s);
                }
            } catch (RuntimeException | Error e) {
                LOG.warn("closing the media stream failed: {}", e.toString());
            } finally {
                if (link != null) {
                    link.close(); // the process holds no sound server connection between calls
                }
                synchronized (late) {
                    done.countDown();
                    if (late.get()) {
                        UNFINISHED_CLOSES.decrementAndGet();
                        LOG.info("the media stream's late close finished after {} ms",
                                java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - begun));
                    }
                }
            }
        }, "tpmphone-media-close-" + CLOSERS.incrementAndGet());
        closer.setDaemon(true);
        boolean interrupted = false;
        try {
            closer.start();
            // uninterruptibly up to the deadline: an interrupted caller must not release the sockets and the grant
            // while libjitsi still closes (the flag is restored below)
            long deadline = begun + STREAM_CLOSE_TIMEOUT.toNanos();
            while (done.getCount() > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                try {
                    done.await(left, java.util.concurrent.TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            boolean finished;
            synchronized (late) {
                finished = done.getCount() == 0;
                if (!finished) {
                    late.set(true);
                    UNFINISHED_CLOSES.incrementAndGet();
                }
            }
            if (!finished) {
                STUCK_CLOSES.incrementAndGet();
                StringBuilder at = new StringBuilder();
                StackTraceElement[] frames = closer.getStackTrace();
                for (int i = 0; i < Math.min(frames.length, 12); i++) {
                    at.append(i == 0 ? "" : " < ").append(frames[i]);
                }
                LOG.warn("closing the media stream did not finish within {} s (stuck in {}): the call's sockets and"
                        + " sound server grant are released without it; {} left to finish", STREAM_CLOSE_TIMEOUT
                        .toSeconds(), at.length() == 0 ? "?" : at, closer.getName());
                if (link != null) {
                    // cut the sound server connection before the grant goes: the process must not go on recording
                    // the microphone for an ended call while FMJ is stuck (the link is freed by the closer thread)
                    try {
                        link.disconnect();
                    } catch (RuntimeException | Error e) {
                        LOG.warn("disconnecting from the sound server failed: {}", e.toString());
                    }
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            rtp.close(); // whatever FMJ did, the call's sockets are released
            rtcp.close();
            if (accessAcquired && audioDevice instanceof AudioDevice.SoundServer server) {
                accessAcquired = false;
                server.access().release(callId);
            }
        }
    }

    private static void closeStream(MediaStream stream) {
        // stop() and close() end FMJ's non-daemon threads; close() also closes the connector's sockets
        try {
            stream.stop();
            stream.close();
        } catch (javax.media.ClockStartedError | RuntimeException e) {
            // FMJ throws ClockStartedError ("deallocate cannot be used on a started controller") when its
            // processor, still prefetching, was started by its own thread after stop() (seen in CI when a
            // call set up moments before ended with the phone): stop the now-started one and close again.
            LOG.debug("closing the media stream raced its start ({}); stopping and closing again", e.toString());
            try {
                stream.stop();
                stream.close();
            } catch (javax.media.ClockStartedError | RuntimeException again) {
                LOG.warn("the media stream did not close cleanly: {}", again.toString());
            }
        }
    }

    private static final class Listener implements SrtpListener {
        @Override
        public void securityTurnedOn(MediaType mediaType, String suite, org.jitsi.service.neomedia.SrtpControl c) {
            LOG.debug("SRTP on for {} ({})", mediaType, suite);
        }

        @Override
        public void securityTurnedOff(MediaType mediaType) {
            LOG.debug("SRTP off for {}", mediaType);
        }

        @Override
        public void securityMessageReceived(String message, String i18nMessage, int severity) {
            LOG.warn("SRTP: {}", message);
        }

        @Override
        public void securityTimeout(MediaType mediaType) {
            LOG.warn("SRTP negotiation timed out for {}", mediaType);
        }

        @Override
        public void securityNegotiationStarted(MediaType mediaType, org.jitsi.service.neomedia.SrtpControl c) {
            LOG.debug("SRTP negotiation for {}", mediaType);
        }
    }
}
