package io.tpmphone.softphone;

import io.tpmphone.softphone.control.ControlServer;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.AuditedDecisions;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.PassportVerifier;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.X509EncodedKeySpec;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The softphone core process the agent launches and measures. It reads its configuration ({@link PhoneConfig}),
 * takes the broker token from stdin, connects to the agent broker named by {@code TPMPHONE_BROKER}, proves the broker
 * answers with one quote, and runs the SIP phone: attested TLS with the host's TPM-resident identity key, SRTP keys
 * from the sealed keystore, every call decision recorded in the server's audit log, and a control channel for the
 * user interface. It runs until the agent closes its stdin (or the agent dies and {@code unshare --kill-child} ends
 * it), then ends its calls and registrations. The agent names its control socket in {@code TPMPHONE_CONTROL} (a
 * directory it prepared for us); once SIP and the control socket are up, we tell the agent (broker {@code READY}).
 * Exit codes: 0 stopped by the agent, 2 bad configuration or start (the error line names the step, and the kind and
 * reason of the failure).
 */
public final class SoftphoneMain {
    private static final Logger LOG = LoggerFactory.getLogger(SoftphoneMain.class);

    private SoftphoneMain() {
    }

    public static void main(String[] args) throws Exception {
        // libjitsi and FMJ log through java.util.logging at INFO per packet stream: warnings are what matters here.
        java.util.logging.Logger.getLogger("").setLevel(java.util.logging.Level.WARNING);
        for (java.util.logging.Handler h : java.util.logging.Logger.getLogger("").getHandlers()) {
            h.setLevel(java.util.logging.Level.WARNING);
            h.setEncoding("UTF-8"); // the agent gives us no locale: the platform default would be ASCII
        }
        if (args.length != 2 || !args[0].equals("--config")) {
            LOG.error("usage: SoftphoneMain --config FILE");
            System.exit(2);
        }
        PhoneConfig config;
        try {
            config = PhoneConfig.read(Path.of(args[1]));
        } catch (IOException | IllegalArgumentException e) {
            LOG.error("configuration {}: {}", args[1], e.getMessage());
            System.exit(2);
            return;
        }
        String broker = System.getenv("TPMPHONE_BROKER");
        String controlSocket = System.getenv("TPMPHONE_CONTROL");
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        String token = stdin.readLine();
        if (broker == null || controlSocket == null || token == null) {
            LOG.error("no broker (TPMPHONE_BROKER), no control socket (TPMPHONE_CONTROL) or no token on stdin: start"
                    + " me through the agent");
            System.exit(2);
        }
        String step = "connecting to the agent's broker " + broker;
        try (AgentBroker client = AgentBroker.connect(Path.of(broker), token.trim())) {
            step = "quoting through the agent's broker";
            byte[] binder = new byte[32];
            new java.security.SecureRandom().nextBytes(binder);
            Map<String, String> quote = client.quote(binder);
            LOG.info("attested through the agent broker: AK {}, PCRs {}", quote.get("akId"), quote.get("pcrs"));
            Clock clock = Clock.systemUTC();
            step = "getting the server's result key and the device certificate from the agent";
            PassportVerifier verifier = verifier(client, clock);
            BrokerHostIdentity identity = new BrokerHostIdentity(client);
            short[] source = config.toneHz() > 0 ? Wav.tone(config.toneHz(), 0.5, 1) : new short[Wav.SAMPLE_RATE];
            java.util.concurrent.atomic.AtomicReference<io.tpmphone.softphone.control.RingScreen> screen =
                    new java.util.concurrent.atomic.AtomicReference<>();
            SipPhone.Listener shown = new SipPhone.Listener() {
                @Override
                public void ringing(Call call) {
                    LOG.info("ringing: {}", call.display());
                    redraw();
                }

                private void redraw() {
                    io.tpmphone.softphone.control.RingScreen s = screen.get();
                    if (s != null) {
                        s.changed();
                    }
                }

                @Override
                public void decided(Call call, CallPolicy.Decision decision) {
                    redraw();
                }

                @Override
                public void ended(Call call) {
                    redraw();
                    LOG.info("call {} {}: {}", io.tpmphone.attestation.UntrustedText.forTerminal(call.callId(), 200),
                            call.state(), io.tpmphone.attestation.UntrustedText.forTerminal(call.reason()));
                }
            };
            step = "starting SIP on " + config.address().getHostAddress() + " (TLS port " + config.tlsPort()
                    + (config.tcpPort() > 0 ? ", TCP port " + config.tcpPort() : "")
                    + (config.udpPort() > 0 ? ", UDP port " + config.udpPort() : "") + ")";
            try (SipPhone phone = SipPhone.start(new SipPhone.Config(config.user(), config.host(), config.address(),
                            config.tlsPort(), config.tcpPort(), config.udpPort(), config.setupTimeout(),
                            config.mediaMode()),
                    AttestedTlsConfig.of(identity, verifier, clock), config.policy(), SipPhone.Keys.fromBroker(client),
                    new AuditedDecisions(client, shown), media(config, source, client), clock,
                    SipPhone.Limits.DEFAULTS.withCalls(SipPhone.Limits.DEFAULTS.maxCalls(),
                            SipPhone.Limits.DEFAULTS.maxSettingUp(), config.callHistory()))) {
                step = "unsealing the phrase for the ring screen";
                java.util.Optional<String> phrase = phrase(client);
                io.tpmphone.softphone.control.RingScreen ring = new io.tpmphone.softphone.control.RingScreen(phone,
                        phrase, config.autoAnswer(), clock);
                screen.set(ring);
                soundServer(config, client).ifPresent(device -> ring.withRinging(
                        call -> io.tpmphone.softphone.media.Ringer.start(device, call.callId().replace(' ', '_')
                                + "#ring")));
                phone.answerWith(ring);
                step = "listening on the control socket " + controlSocket;
                try (ControlServer control = ControlServer.start(phone, ring, Path.of(controlSocket))) {
                    step = "telling the agent we are ready";
                    client.ready(phone.uri());
                    LOG.info("softphone {} ready (TLS {}), control {}", phone.uri(), config.tlsPort(), control.path());
                    while (stdin.readLine() != null) {
                        // the agent talks to us only by closing stdin
                    }
                    LOG.info("agent closed our stdin: stopping");
                }
            }
        } catch (IOException | io.tpmphone.softphone.sip.PhoneException | java.security.GeneralSecurityException
                 | RuntimeException e) {
            LOG.error("the softphone could not start: {} failed: {}", step, describe(e));
            System.exit(2);
        }
        // FMJ and libjitsi leave non-daemon threads behind
        System.exit(0);
    }

    /**
     * The person's phrase, which the agent unseals with the keystore for this measured softphone only; empty when
     * none was set (or the agent has none to give).
     */
    private static java.util.Optional<String> phrase(AgentBroker client) {
        try {
            return client.phrase();
        } catch (IOException e) {
            LOG.warn("no phrase for the ring screen: {}", io.tpmphone.attestation.UntrustedText.forTerminal(
                    e.getMessage()));
            return java.util.Optional.empty();
        }
    }

    /**
     * Each call's audio as configured: the tone device, or the sound server (its address as configured, else the
     * socket the agent grants for each call in our working directory), offering the configured codecs in order.
     */
    static SipPhone.Media media(PhoneConfig config, short[] tone, AgentBroker broker) {
        PhoneConfig.Audio audio = config.audio();
        io.tpmphone.softphone.media.AudioDevice device = soundServer(config, broker)
                .<io.tpmphone.softphone.media.AudioDevice>map(d -> d)
                .orElseGet(() -> new io.tpmphone.softphone.media.AudioDevice.Tone(tone));
        return new SipPhone.Media() {
            @Override
            public AudioSession open(String callId) throws IOException {
                return AudioSession.open(config.address(), device, callId);
            }

            @Override
            public List<Integer> payloadTypes() {
                return audio.payloadTypes();
            }
        };
    }

    /**
     * The sound server as configured: its address as configured, else the socket the agent grants for the duration
     * of each call (and of each ringing) in our working directory; empty with the tone device.
     */
    static java.util.Optional<io.tpmphone.softphone.media.AudioDevice.SoundServer> soundServer(PhoneConfig config,
            AgentBroker broker) {
        PhoneConfig.Audio audio = config.audio();
        io.tpmphone.softphone.media.AudioDevice.SoundServer device;
        if (!audio.soundServer()) {
            return java.util.Optional.empty();
        } else if (audio.server().isPresent()) {
            device = new io.tpmphone.softphone.media.AudioDevice.SoundServer(audio.server().get(),
                    audio.microphone(), audio.speaker());
        } else {
            // the agent's socket, granted for the duration of each call
            device = new io.tpmphone.softphone.media.AudioDevice.SoundServer("unix:"
                    + Path.of(PhoneConfig.AGENT_SOUND_SOCKET).toAbsolutePath(), audio.microphone(), audio.speaker(),
                    new io.tpmphone.softphone.media.AudioDevice.Access() {
                        @Override
                        public void acquire(String callId) throws IOException {
                            broker.sound(true, callId);
                        }

                        @Override
                        public void release(String callId) {
                            try {
                                broker.sound(false, callId);
                            } catch (IOException | RuntimeException e) {
                                LOG.warn("could not give the sound server socket back to the agent: {}",
                                        io.tpmphone.attestation.UntrustedText.forTerminal(e.toString()));
                            }
                        }
                    });
        }
        return java.util.Optional.of(device);
    }

    /**
     * The kind and reason of a failure and of its causes: a bare {@code AccessDeniedException} message is only a
     * path, which tells nobody what went wrong.
     */
    static String describe(Throwable e) {
        StringBuilder s = new StringBuilder();
        for (Throwable t = e; t != null && s.length() < 2000; t = t.getCause() == t ? null : t.getCause()) {
            if (s.length() > 0) {
                s.append("; caused by ");
            }
            s.append(t.getClass().getSimpleName());
            if (t instanceof java.nio.file.FileSystemException f) {
                s.append(" (").append(f.getFile() == null ? "" : f.getFile())
                        .append(f.getOtherFile() == null ? "" : " -> " + f.getOtherFile()).append("): ")
                        .append(f.getReason() != null ? f.getReason()
                                : f instanceof java.nio.file.AccessDeniedException ? "permission denied"
                                : f instanceof java.nio.file.NoSuchFileException ? "no such file or directory"
                                : "failed");
            } else if (t.getMessage() != null) {
                s.append(": ").append(t.getMessage());
            }
        }
        return s.toString();
    }

    /** Peers' passports are verified with the server's result key and device CA, both handed over by the agent. */
    private static PassportVerifier verifier(AgentBroker client, Clock clock) throws IOException,
            java.security.GeneralSecurityException {
        PublicKey resultKey = KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(
                client.resultVerificationKey()));
        // The device certificate is issued once the agent's first appraisal of this very launch is MEASURED, which
        // may come a moment after we start.
        List<byte[]> chain = List.of();
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
        while (chain.size() < 2) {
            try {
                chain = client.certificates();
            } catch (BrokerRefusedException notYet) {
                if (System.nanoTime() > deadline) {
                    throw new IOException("the agent has no device certificate for this host after 60 s: "
                            + notYet.getMessage(), notYet);
                }
                try {
                    Thread.sleep(250);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted", e);
                }
            }
        }
        X509Certificate ca = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(
                new ByteArrayInputStream(chain.get(chain.size() - 1)));
        return new PassportVerifier(resultKey, List.of(ca), clock);
    }
}
