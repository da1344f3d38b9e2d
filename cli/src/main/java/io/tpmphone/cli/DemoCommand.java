package io.tpmphone.cli;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.UntrustedText;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.agent.Agent;
import io.tpmphone.rig.Capture;
import io.tpmphone.rig.Kamailio;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.control.ControlClient;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Help.Ansi;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The whole story on one machine (DESIGN §4): two TPM hosts, attestation, an attested SRTP call between the measured
 * softphones, the same two calling through a SIP proxy (a real kamailio over TLS) with their evidence end to end inside
 * the DTLS-SRTP association and no key in anything the proxy relays, a tampered softphone refused with its keys kept
 * sealed, and the audit log verified. Every step checks
 * what it shows; the exit code is 0 only if all did what they should.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"The whole story on one machine, with embedded defaults:",
                "two swtpm hosts (alice, bob), the attestation server, two agents that measure and launch",
                "isolated softphones; an attested SRTP call with both integrity levels shown; a call through a",
                "SIP proxy (kamailio, which the demo starts) with the evidence end to end over DTLS-SRTP and no",
                "key for the proxy to see; bob's softphone tampered with, the call refused and bob's keys sealed;",
                "the audit log verified.",
                "Exit 0 only if every step did what it should; Ctrl-C stops everything it started."},
        footer = {"", "Examples:", "  ./tpmphone demo", "  ./tpmphone demo --json > summary.json",
                "  ./tpmphone demo --keep /tmp/demo   # keep state and logs"})
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--json", description = "print a JSON summary on stdout (the story still goes to stderr)")
    boolean json;

    @Option(names = "--keep", paramLabel = "DIR", description = "keep the state (server database, agents' logs,"
            + " the softphones' logs) in DIR instead of deleting it")
    Path keep;

    /** One step of the story as the summary reports it. */
    record Step(String name, boolean ok, double seconds, List<String> facts) {
    }

    /** The SIP domain of the demo's proxy, and the policy line each measured softphone gets for calls through it. */
    static final String PROXY_DOMAIN = "demo.test";
    static final String PROXY_POLICY = "policy.2=any sip:*@" + PROXY_DOMAIN + " UNATTESTED reject end-to-end MEASURED";

    /** Lines of each softphone's log shown under a failed step. */
    private static final int FAILED_STEP_LOG_LINES = 40;
    private final List<Step> steps = new ArrayList<>();
    /** The proxy while its step runs (stopped by the step, or by {@link #stop} on Ctrl-C). */
    private volatile Kamailio proxy;
    /** The proxy step's packet capture while it runs (stopped by the step, or by {@link #stop} on Ctrl-C). */
    private volatile Capture capture;
    private PrintWriter out;
    private Ansi ansi;
    /** The rig once started (its element is null before and after), for the softphones' logs when a step fails. */
    private TwoHostRig[] running = new TwoHostRig[1];

    @Override
    public Integer call() throws Exception {
        // The story is for a person: stderr when --json owns stdout.
        out = json ? spec.commandLine().getErr() : spec.commandLine().getOut();
        ansi = Ansi.AUTO;
        Instant started = Instant.now();
        if (keep != null && Files.isDirectory(keep)) {
            try (Stream<Path> entries = Files.list(keep)) {
                if (entries.findAny().isPresent()) {
                    throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--keep " + keep
                            + " is not empty: the demo starts from nothing; name a new or empty directory");
                }
            }
        }
        Path dir = keep != null ? Files.createDirectories(keep) : Files.createTempDirectory("tpmphone-demo");
        TwoHostRig[] rig = new TwoHostRig[1];
        running = rig;
        Thread cleanup = new Thread(() -> stop(rig[0], dir), "demo-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        boolean ok;
        try {
            ok = story(dir, rig);
        } finally {
            stop(rig[0], dir);
            rig[0] = null;
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException shuttingDown) {
                // Ctrl-C: the hook is running
            }
        }
        double seconds = Duration.between(started, Instant.now()).toMillis() / 1000.0;
        say("");
        say(ok ? ansi.string("@|bold,green Every step did what it should|@") + String.format(Locale.ROOT,
                " (%.1f s).", seconds) : ansi.string("@|bold,red The demo failed|@") + ": see the step marked ✗ above.");
        if (keep != null) {
            say("State and logs kept in " + keep.toAbsolutePath() + " (server/audit.db, */launch/child.log).");
        }
        if (json) {
            Map<String, Object> summary = new LinkedHashMap<>();
            summary.put("ok", ok);
            summary.put("seconds", seconds);
            summary.put("steps", steps);
            spec.commandLine().getOut().println(TpmCommand.JSON.writeValueAsString(summary));
        }
        return ok ? 0 : 1;
    }

    private boolean story(Path dir, TwoHostRig[] rig) {
        say(ansi.string("@|bold tpmphone demo|@") + ": two hosts whose softphones prove their integrity to each other"
                + " before a call.");
        say("");
        boolean ok = step("Start two TPM hosts, the attestation server, two agents and their measured softphones",
                "swtpm ×2 with EK certificates, enrollment (EK → AK), measured launch, appraisal; ~20 s", facts -> {
                    // Both measured softphones accept a call through the demo's proxy (an UNATTESTED hop) only when
                    // the far end proves MEASURED end to end: part of their measured configuration.
                    rig[0] = TwoHostRig.start(dir.resolve("state"), new TwoHostRig.Options(Map.of(
                            "alice", List.of(PROXY_POLICY), "bob", List.of(PROXY_POLICY)), java.util.Optional.empty(),
                            Map.of()));
                    for (TwoHostRig.Host h : List.of(rig[0].alice(), rig[0].bob())) {
                        Agent.Status s = h.agent().status();
                        facts.add(h.name() + ": " + level(s.levelName()) + " — AK " + s.akId().substring(0, 12)
                                + "…, softphone " + (TwoHostRig.ISOLATE ? "isolated (PID/mount/IPC namespaces, its own"
                                + " user " + h.agent().childUser() + ")" : "not isolated (run as root for namespaces)")
                                + ", SRTP keys sealed to this state");
                    }
                    return true;
                });
        if (!ok) {
            return false;
        }
        String[] callId = new String[1];
        ok = step("Alice calls bob: attested TLS 1.3, SDES-SRTP with keys from the sealed keystores",
                "evidence travels inside the TLS handshake, bound to it; each side's policy needs MEASURED", facts -> {
                    try (ControlClient alice = ControlClient.connect(rig[0].alice().childControl(),
                            Duration.ofSeconds(60));
                         ControlClient bob = ControlClient.connect(rig[0].bob().childControl(),
                                 Duration.ofSeconds(60))) {
                        callId[0] = alice.call("sips:bob@bob", "127.0.0.1:" + rig[0].bob().childTlsPort());
                        JsonNode a = alice.await(callId[0], Duration.ofSeconds(20));
                        facts.add("alice sees: " + UntrustedText.forTerminal(a.path("display").asText(a.path("reason")
                                .asText())) + " (" + UntrustedText.forTerminal(a.path("state").asText()) + ")");
                        JsonNode b = bob.await(callId[0], Duration.ofSeconds(10));
                        facts.add("bob sees:   " + UntrustedText.forTerminal(b.path("display").asText(b.path("reason")
                                .asText())));
                        if (!a.path("state").asText().equals("ESTABLISHED")
                                || !b.path("state").asText().equals("ESTABLISHED")
                                || !a.path("level").asText().equals("MEASURED")
                                || !b.path("level").asText().equals("MEASURED")) {
                            facts.add("expected an established call with MEASURED on both sides: "
                                    + UntrustedText.forTerminal(a + " " + b, 4000));
                            return false;
                        }
                        JsonNode ah = alice.awaitAudio(callId[0], 2.0, Duration.ofSeconds(20));
                        JsonNode bh = bob.awaitAudio(callId[0], 2.0, Duration.ofSeconds(20));
                        facts.add(String.format(Locale.ROOT, "audio (SRTP AES_CM_128_HMAC_SHA1_80): bob hears %.0f Hz"
                                + " (alice sends 1000), alice hears %.0f Hz (bob sends 440); %d packets lost",
                                bh.path("dominantHz").asDouble(), ah.path("dominantHz").asDouble(),
                                bh.path("packetsLost").asLong() + ah.path("packetsLost").asLong()));
                        alice.hangUp(callId[0]);
                        return Math.abs(bh.path("dominantHz").asDouble() - 1000) < 20
                                && Math.abs(ah.path("dominantHz").asDouble() - 440) < 20;
                    }
                });
        if (!ok) {
            return false;
        }
        ok = step("Alice calls bob through a SIP proxy: DTLS-SRTP, the evidence end to end",
                "kamailio over TLS (no attestation: an UNATTESTED hop) registers both and relays the call; the"
                        + " evidence rides inside the DTLS association, and the SDP holds fingerprints, not keys;"
                        + " a capture on loopback shows the SIP only as TLS and the media as DTLS, then SRTP",
                facts -> throughProxy(dir, rig[0], facts));
        if (!ok) {
            return false;
        }
        ok = step("Tamper with bob's softphone: one extra entry in its jar; bob's agent relaunches it",
                "the agent measures what it launches; the server compares it with the approved release", facts -> {
                    Agent.Status s = rig[0].tamperAndRelaunch("bob");
                    facts.add("bob: " + level(s.levelName()) + (s.failedCheck() == null ? "" : " — failed check "
                            + s.failedCheck()));
                    s.reasons().stream().limit(2).forEach(r -> facts.add("  " + UntrustedText.forTerminal(r)));
                    // The tampered build runs: its phone answers as before, with what its TPM can prove.
                    try (ControlClient bob = ControlClient.connect(rig[0].bob().childControl(),
                            Duration.ofSeconds(60))) {
                        facts.add("bob's tampered softphone is running: " + UntrustedText.forTerminal(bob.request(
                                ControlClient.op("status")).path("uri").asText()));
                    }
                    return s.is(IntegrityLevel.FAILED);
                });
        if (!ok) {
            return false;
        }
        ok = step("Alice calls bob again: refused, and bob's keys stay sealed",
                "alice's policy needs MEASURED; the TPM releases bob's keys only for an approved state", facts -> {
                    boolean refused;
                    try (ControlClient alice = ControlClient.connect(rig[0].alice().childControl(),
                            Duration.ofSeconds(30))) {
                        String id = alice.call("sips:bob@bob", "127.0.0.1:" + rig[0].bob().childTlsPort());
                        JsonNode a = alice.await(id, Duration.ofSeconds(20));
                        refused = a.path("state").asText().equals("REFUSED")
                                && a.path("level").asText().equals("FAILED");
                        facts.add("alice: " + a.path("state").asText() + " — " + UntrustedText.forTerminal(
                                a.path("reason").asText()));
                    }
                    boolean sealed;
                    TwoHostRig.KeyRequest k = rig[0].bob().requestSrtpKey("AES_CM_128_HMAC_SHA1_80",
                            "demo-after-tamper");
                    if (k.released()) {
                        facts.add("bob's keystore released a key: that must not happen (" + k.message() + ")");
                        sealed = false;
                    } else {
                        String reason = k.refusal().orElseThrow();
                        facts.add("bob asks his TPM for an SRTP key: refused " + reason + " — " + firstLine(
                                k.message()).replaceFirst("^(" + reason + ": )+", ""));
                        sealed = reason.equals("NOT_APPROVED") || reason.equals("POLICY_FAIL");
                    }
                    return refused && sealed;
                });
        if (!ok) {
            return false;
        }
        return step("Verify the audit log: hash chain and signed checkpoints, every decision recorded",
                "what a security team reviews after the fact: the server stops, its database is checked offline",
                facts -> {
                    rig[0].alice().agent().attestNow(); // alice's call decisions ride on her next attestation
                    JsonNode records = rig[0].client().get("/v1/audit?from=1&limit=1000", TwoHostRig.ADMIN_TOKEN)
                            .get("records");
                    Map<String, Integer> byType = new java.util.TreeMap<>();
                    java.util.Set<String> decided = new java.util.HashSet<>();
                    records.forEach(r -> {
                        byType.merge(r.path("type").asText() + " " + r.path("outcome").asText(), 1, Integer::sum);
                        decided.add(r.path("type").asText() + " " + r.path("subject").asText() + " "
                                + r.path("outcome").asText());
                    });
                    // As an auditor would: stop the server (it signs a final checkpoint), then check its database
                    // offline with the server's public key.
                    java.security.PublicKey key = rig[0].server().resultVerificationKey();
                    rig[0].server().close();
                    var report = io.tpmphone.server.audit.AuditVerifier.verify(
                            rig[0].serverDirectory().resolve("audit.db"), java.util.Optional.of(key));
                    facts.add(records.size() + " records: " + byType);
                    facts.add(String.format(Locale.ROOT, "verified with the server's result key: %d records, %d"
                            + " signed checkpoint(s), %s", report.recordsChecked(), report.checkpointsChecked(),
                            report.intact() ? "intact" : "BROKEN: " + report.firstProblem().map(Object::toString)
                                    .orElse("?")));
                    // both sides' acceptance of the first call (bob's was reported by his agent as it stopped for the
                    // tamper), and alice's refusal of the tampered bob
                    boolean decisions = decided.containsAll(List.of("CALL_DECISION alice ACCEPT",
                            "CALL_DECISION bob ACCEPT", "CALL_DECISION alice REJECT"));
                    boolean refusedKey = byType.keySet().stream().anyMatch(k -> k.startsWith("KEY_RELEASE")
                            && k.endsWith("REFUSED"));
                    return report.intact() && decisions && refusedKey;
                });
    }

    /**
     * The proxy step: kamailio with TLS and fresh passwords, both measured softphones registered at it, alice calls
     * sip:bob@{@value #PROXY_DOMAIN} through it; both must see the far end MEASURED end to end (the hop UNATTESTED),
     * hear each other's tone, and what kamailio relayed must hold DTLS-SRTP offers and answers with fingerprints and
     * no {@code a=crypto} or key. A capture on loopback (tshark) shows the wire: the SIP to and from the proxy only
     * as TLS (nothing of it in clear), and on both media ports the SDP named DTLS (handshake and evidence) and then
     * SRTP — packets that, decoded as the call's G.711 codec, carry neither tone (clear RTP would carry its tone).
     */
    private boolean throughProxy(Path dir, TwoHostRig rig, List<String> facts) throws Exception {
        Map<String, String> passwords = Map.of("alice", randomPassword(), "bob", randomPassword());
        proxy = Kamailio.start(dir.resolve("kamailio"), PROXY_DOMAIN, "SHA-256", passwords);
        try (ControlClient alice = ControlClient.connect(rig.alice().childControl(), Duration.ofSeconds(30));
             ControlClient bob = ControlClient.connect(rig.bob().childControl(), Duration.ofSeconds(30))) {
            String registrar = "127.0.0.1:" + proxy.tls().getPort();
            String aliceAor = "sip:alice@" + PROXY_DOMAIN;
            String bobAor = "sip:bob@" + PROXY_DOMAIN;
            JsonNode ra = alice.register(aliceAor, registrar, "alice", passwords.get("alice"), Duration.ofMinutes(5));
            JsonNode rb = bob.register(bobAor, registrar, "bob", passwords.get("bob"), Duration.ofMinutes(5));
            facts.add("kamailio on " + registrar + " (TLS): alice " + ra.path("state").asText() + ", bob "
                    + rb.path("state").asText() + " (digest " + ra.path("digestAlgorithm").asText("?") + ")");
            if (!ra.path("state").asText().equals("REGISTERED") || !rb.path("state").asText().equals("REGISTERED")) {
                facts.add("registration refused: " + UntrustedText.forTerminal(ra.path("reason").asText() + " / "
                        + rb.path("reason").asText()));
                return false;
            }
            int logBefore = proxy.log().length();
            int proxyPort = proxy.tls().getPort();
            try {
                capture = Capture.start(dir.resolve("proxy-call.pcap"), "udp or tcp port " + proxyPort);
            } catch (IOException e) {
                facts.add("cannot capture the call on loopback with tshark (it needs tshark and the right to capture:"
                        + " root): " + UntrustedText.forTerminal(e.getMessage(), 500));
                return false;
            }
            String id = alice.callVia(bobAor, aliceAor);
            JsonNode a = alice.await(id, Duration.ofSeconds(20));
            JsonNode b = bob.await(id, Duration.ofSeconds(10));
            facts.add("alice sees bob:  " + endToEnd(a));
            facts.add("bob sees alice:  " + endToEnd(b));
            boolean measured = a.path("state").asText().equals("ESTABLISHED")
                    && b.path("state").asText().equals("ESTABLISHED") && a.path("endToEnd").asBoolean()
                    && b.path("endToEnd").asBoolean() && a.path("farEndLevel").asText().equals("MEASURED")
                    && b.path("farEndLevel").asText().equals("MEASURED")
                    && a.path("level").asText().equals("UNATTESTED") && b.path("level").asText().equals("UNATTESTED");
            if (!measured) {
                facts.add("expected an established DTLS-SRTP call, each far end MEASURED end to end over an"
                        + " UNATTESTED hop: " + UntrustedText.forTerminal(a + " " + b, 4000));
                facts.add(UntrustedText.forTerminal(proxy.logTail(20), 4000));
                return false;
            }
            JsonNode ah = alice.awaitAudio(id, 1.0, Duration.ofSeconds(20));
            JsonNode bh = bob.awaitAudio(id, 1.0, Duration.ofSeconds(20));
            facts.add(String.format(Locale.ROOT, "audio (DTLS-SRTP, keys from the association): bob hears %.0f Hz,"
                    + " alice hears %.0f Hz", bh.path("dominantHz").asDouble(), ah.path("dominantHz").asDouble()));
            boolean tones = Math.abs(bh.path("dominantHz").asDouble() - 1000) < 20
                    && Math.abs(ah.path("dominantHz").asDouble() - 440) < 20;
            alice.hangUp(id);
            // What the proxy saw: it logs every SDP body it relays, as it received it.
            // (kamailio writes each body as it came, over several lines of its log)
            String seen = proxy.log().substring(logBefore);
            long bodies = count(seen, "relayed SDP of ");
            long offers = count(seen, "relayed SDP of INVITE");
            long answers = java.util.regex.Pattern.compile("relayed SDP of [12][0-9][0-9] reply").matcher(seen)
                    .results().count();
            boolean dtls = offers > 0 && answers > 0 && seen.contains("UDP/TLS/RTP/SAVP")
                    && seen.contains("a=fingerprint:sha-256 ") && seen.contains("a=setup:");
            boolean noKey = !seen.contains("a=crypto") && !seen.contains("inline:");
            facts.add("the proxy relayed " + bodies + " SDP bodies (" + offers + " offer(s), " + answers
                    + " answer(s)): " + (dtls ? "UDP/TLS/RTP/SAVP with a=fingerprint and a=setup" : "NOT DTLS-SRTP")
                    + ", " + (noKey ? "no a=crypto, no key" : "A KEY (a=crypto)"));
            boolean wire = onTheWire(seen, proxyPort, facts);
            alice.unregister(aliceAor);
            bob.unregister(bobAor);
            return tones && dtls && noKey && wire;
        } finally {
            Capture c = capture;
            capture = null;
            if (c != null) {
                c.stop();
            }
            Kamailio k = proxy;
            proxy = null;
            if (k != null) {
                k.close();
            }
        }
    }

    /**
     * What the proxy step's capture shows (the capture stops here): the SIP on the proxy's TLS port, and on its UDP
     * port, never in clear,
     * and each media port the relayed SDP named ({@code m=audio PORT}) receiving DTLS first, then SRTP whose payloads,
     * decoded as the call's G.711 codec, carry less than 10 % of either tone's energy in every 160 ms of the capture
     * (clear RTP of a tone, even for a moment: near 100 %). Whether all of it holds.
     */
    private boolean onTheWire(String relayedSdp, int proxyPort, List<String> facts) throws Exception {
        Capture c = capture;
        List<Integer> ports = java.util.regex.Pattern.compile("m=audio (\\d+) ").matcher(relayedSdp).results()
                .map(m -> Integer.parseInt(m.group(1))).distinct().toList();
        Capture.Tcp sip = c.stopAndReadTcp(proxyPort, "SIP/2.0", "INVITE ", "a=crypto", "inline:", "a=fingerprint");
        boolean sealed = sip.segments() > 0 && sip.inClear().isEmpty();
        facts.add("on the wire (tshark on loopback): SIP to and from the proxy, " + sip + (sealed ? " (TLS)" : ""));
        // kamailio also listens on UDP: nothing of the call may cross that port in clear
        Capture.Tcp udp = c.stopAndReadUdp(proxy.udp().getPort(), "SIP/2.0", "INVITE ", "a=crypto", "inline:",
                "a=fingerprint");
        facts.add("the proxy's UDP port " + proxy.udp().getPort() + ": " + (udp.inClear().isEmpty()
                ? "nothing in clear (" + udp.segments() + " datagrams)" : "SIP IN CLEAR: " + udp.inClear()));
        sealed &= udp.inClear().isEmpty();
        boolean srtp = ports.size() == 2;
        if (!srtp) {
            facts.add("expected the two media ports of the call in the relayed SDP, found " + ports);
        }
        Map<Integer, Capture.Media> media = ports.isEmpty() ? Map.of() : c.stopAndReadMedia(ports);
        for (int port : ports) {
            Capture.Media m = media.get(port);
            java.util.OptionalDouble share = m.toneShare(1000, 440);
            // SRTP's keys come from the DTLS handshake: no packet before it ends; an SRTP packet carries its auth tag,
            // so none is a bare G.711 frame (160 bytes for 20 ms, 170 with the tag); and no moment of it decodes as
            // either tone
            boolean ok = m.shownToBeSrtp(1000, 440);
            facts.add("media to port " + port + ": " + m + (share.isPresent() ? String.format(Locale.ROOT,
                    "; decoded as %s they carry at most %.1f %% of either tone in any 160 ms",
                    m.payloadType() == 0 ? "PCMU" : "PCMA", 100 * share.getAsDouble())
                    : "; a codec this check cannot decode") + ": " + (ok ? "SRTP, not RTP" : "NOT SHOWN TO BE SRTP"));
            srtp &= ok;
        }
        return sealed && srtp;
    }

    /** What one side saw of the far end and of the hop. */
    private String endToEnd(JsonNode call) {
        return call.path("state").asText() + ", far end " + level(call.path("farEndLevel").asText("none")) + " "
                + UntrustedText.forTerminal(call.path("farEndHost").asText("?"), 100) + (call.path("endToEnd")
                .asBoolean() ? " end to end over DTLS" : " (not end to end)") + ", first hop (the proxy) "
                + call.path("level").asText("?") + (call.path("state").asText().equals("ESTABLISHED") ? ""
                : " — " + UntrustedText.forTerminal(call.path("reason").asText(), 500));
    }

    private static long count(String in, String what) {
        long n = 0;
        for (int i = in.indexOf(what); i >= 0; i = in.indexOf(what, i + what.length())) {
            n++;
        }
        return n;
    }

    private static String randomPassword() {
        byte[] b = new byte[12];
        new java.security.SecureRandom().nextBytes(b);
        return java.util.HexFormat.of().formatHex(b);
    }

    private static String firstLine(String s) {
        int nl = s == null ? -1 : s.indexOf('\n');
        return s == null ? "" : nl < 0 ? s : s.substring(0, nl);
    }

    private String level(String level) {
        String color = switch (level) {
            case "MEASURED", "HARDENED" -> "green";
            case "FAILED" -> "red";
            default -> "yellow";
        };
        return ansi.string("@|bold," + color + " " + level + "|@");
    }

    /** What a step does, filling in the facts it shows; returns whether it did what it should. */
    @FunctionalInterface
    interface Action {
        boolean run(List<String> facts) throws Exception;
    }

    /** Runs one step: its title and why, a ticking clock on a terminal while it runs, ✓ or ✗ and its facts. */
    private boolean step(String title, String why, Action action) {
        int n = steps.size() + 1;
        say(ansi.string("@|bold " + n + ". " + title + "|@"));
        say(ansi.string("   @|faint " + why + "|@"));
        Instant t0 = Instant.now();
        List<String> facts = new ArrayList<>();
        boolean ok;
        Thread ticker = null;
        if (ansi.enabled()) {
            ticker = new Thread(() -> {
                try {
                    while (true) {
                        TimeUnit.MILLISECONDS.sleep(500);
                        out.printf(Locale.ROOT, "\r   … %.0f s", Duration.between(t0, Instant.now()).toMillis() / 1000.0);
                        out.flush();
                    }
                } catch (InterruptedException done) {
                    out.print("\r\u001b[2K");
                    out.flush();
                }
            }, "demo-progress");
            ticker.setDaemon(true);
            ticker.start();
        }
        String failure = null;
        try {
            ok = action.run(facts);
        } catch (Exception e) {
            ok = false;
            failure = e.getMessage() == null ? e.toString() : e.getMessage();
        } finally {
            if (ticker != null) {
                ticker.interrupt();
                try {
                    ticker.join(1000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        double seconds = Duration.between(t0, Instant.now()).toMillis() / 1000.0;
        for (String f : facts) {
            say("   " + f);
        }
        if (failure != null) {
            facts.add("error: " + failure);
            say(ansi.string("   @|red error: " + UntrustedText.forTerminal(failure).replace("|@", "| @") + "|@"));
        }
        if (!ok) {
            softphoneLogs();
        }
        say(String.format(Locale.ROOT, "   %s %.1f s", ok ? ansi.string("@|green ✓|@") : ansi.string("@|red ✗|@"),
                seconds));
        steps.add(new Step(title, ok, seconds, List.copyOf(facts)));
        return ok;
    }

    /**
     * The last lines each softphone logged, after a failed step: what a user (or a CI log) needs to tell a refusal
     * from a timeout without re-running with {@code --keep}. Escaped: the logs hold what peers sent.
     */
    private void softphoneLogs() {
        TwoHostRig rig = running[0];
        if (rig == null) {
            return;
        }
        for (String host : List.of("alice", "bob")) {
            List<String> lines = rig.childLog(host).lines().toList();
            List<String> tail = lines.subList(Math.max(0, lines.size() - FAILED_STEP_LOG_LINES), lines.size());
            say(ansi.string("   @|faint " + host + "'s softphone logged (last " + tail.size() + " of " + lines.size()
                    + " lines):|@"));
            for (String line : tail) {
                say("     " + UntrustedText.forTerminal(line, 400));
            }
        }
    }

    private void say(String line) {
        out.println(line);
        out.flush();
    }

    /** Stops everything the demo started and removes its state (unless --keep); safe to call twice. */
    private synchronized void stop(TwoHostRig rig, Path dir) {
        Capture c = capture;
        capture = null;
        if (c != null) {
            try {
                c.stop();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        Kamailio k = proxy;
        proxy = null;
        if (k != null) {
            k.close();
        }
        if (rig != null) {
            rig.close();
        }
        if (keep == null) {
            try (Stream<Path> s = Files.exists(dir) ? Files.walk(dir) : Stream.empty()) {
                for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
                    Files.deleteIfExists(p);
                }
            } catch (IOException e) {
                // best effort; a leftover temporary directory does not fail the demo
            }
        }
    }
}
