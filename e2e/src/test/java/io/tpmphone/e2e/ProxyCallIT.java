package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Registration;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The two measured softphones through a real SIP proxy and registrar — kamailio with its TLS module, which does not
 * attest: REGISTER with digest authentication (SHA-256 on one instance, MD5 on another), refreshed and removed; calls
 * through the proxy, where each phone's first hop is the proxy, rated {@code UNATTESTED}, and its policy decides.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyCallIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final String DOMAIN = "example.test";
    private static final Map<String, String> PASSWORDS = Map.of("alice", "alice-Secret-1", "bob", "bob-Secret-2");
    /** Attested peers must be MEASURED; a call through the enterprise proxy (an UNATTESTED hop) is allowed. */
    private static final String ALLOW_PROXY = "default MEASURED reject\nany sip:*@" + DOMAIN + " UNATTESTED reject\n";
    private static final String MEASURED_ONLY = "default MEASURED reject\n";

    @TempDir
    static Path dir;
    private TwoHostRig hosts;
    private Kamailio sha256;
    private Kamailio md5;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();

    @BeforeAll
    void start() throws Exception {
        hosts = TwoHostRig.start(dir.resolve("hosts"));
        sha256 = Kamailio.start(dir.resolve("kamailio-sha256"), DOMAIN, "SHA-256", PASSWORDS);
        md5 = Kamailio.start(dir.resolve("kamailio-md5"), DOMAIN, "MD5", PASSWORDS);
    }

    /** Closing a phone removes its registrations: the next test's phones are the only bindings (no forking). */
    @AfterEach
    void closePhones() {
        phones.forEach(SipPhone::close);
        phones.clear();
    }

    @AfterAll
    void stop() throws Exception {
        if (sha256 != null) {
            sha256.close();
        }
        if (md5 != null) {
            md5.close();
        }
        if (hosts != null) {
            hosts.close();
        }
    }

    private SipPhone phone(TwoHostRig.Host host, String user, String policy, SipPhone.Media media)
            throws Exception {
        SipPhone p = SipPhone.start(new SipPhone.Config(user, user, LOOPBACK, FreePorts.tcpAndUdp(), 0, 0, Duration.ofSeconds(15)),
                AttestedTlsConfig.of(host.identity(), hosts.verifier(), Clock.systemUTC()), CallPolicy.parse(policy),
                host.keys(), new SipPhone.Listener() { }, media, Clock.systemUTC());
        phones.add(p);
        return p;
    }

    private static Registration.Account account(Kamailio k, String user, String password, Duration expires) {
        return new Registration.Account("sip:" + user + "@" + DOMAIN, k.tls(), "tls", user, password::toCharArray,
                expires);
    }

    private static Registration registered(SipPhone phone, Registration.Account a, Kamailio k) throws Exception {
        Registration r = phone.register(a).firstOutcome().get(15, TimeUnit.SECONDS);
        assertEquals(Registration.State.REGISTERED, r.state(), () -> r.reason() + "\nkamailio:\n" + k.log());
        return r;
    }

    @Test
    void register_withSha256Digest_isRefreshed_andRemoved() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        Registration r = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(4)),
                sha256);
        assertEquals("SHA-256", r.digestAlgorithm().orElseThrow(), () -> "answered the SHA-256 challenge: " + r);
        assertEquals(Duration.ofSeconds(4), r.granted(), r::reason);
        // refreshed at half the granted time: two refreshes within ~5 s, the binding never lapsing
        Await.until("two refreshes of alice's registration", Duration.ofSeconds(10), () -> r.refreshes() >= 2,
                () -> "refreshes: " + r.refreshes() + ", " + r.state() + " " + r.reason());
        assertEquals(Registration.State.REGISTERED, r.state(), () -> r.reason() + ", after " + r.refreshes()
                + " refreshes\n" + sha256.logTail(60));
        alice.unregister(r, Duration.ofSeconds(5));
        assertEquals(Registration.State.UNREGISTERED, r.state(), () -> r.reason() + "\n" + sha256.logTail(60));
        assertEquals("unregistered", r.reason(), () -> "state " + r.state());
    }

    @Test
    void register_withMd5Digest() throws Exception {
        SipPhone bob = phone(hosts.bob(), "bob", ALLOW_PROXY, null);
        Registration r = registered(bob, account(md5, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), md5);
        assertEquals("MD5", r.digestAlgorithm().orElseThrow(), r::reason);
        bob.unregister(r, Duration.ofSeconds(5));
        assertEquals(Registration.State.UNREGISTERED, r.state(), () -> r.reason() + "\n" + md5.logTail(60));
    }

    @Test
    void aWrongPassword_isRefused_withAReason_andNoLoop() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        Registration r = alice.register(account(sha256, "alice", "not-the-password", Duration.ofSeconds(60)))
                .firstOutcome().get(15, TimeUnit.SECONDS);
        assertEquals(Registration.State.FAILED, r.state(), r::reason);
        assertTrue(r.reason().contains("credentials for alice in realm \"" + DOMAIN + "\" were refused"),
                () -> "the reason says alice's credentials for " + DOMAIN + " were refused: " + r.reason());
        assertTrue(!r.reason().contains("not-the-password"), () -> "no password in the reason: " + r.reason());
        alice.unregister(r, Duration.ofSeconds(1));
    }

    @Test
    void aCallThroughTheProxy_works_whenPolicyAllowsTheUnattestedHop_withSrtpAudio() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)));
        SipPhone bob = phone(hosts.bob(), "bob", ALLOW_PROXY,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1)));
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call.reason() + "\nkamailio:\n" + sha256.log());
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(),
                () -> "alice's first hop: the proxy; " + call.display());
        assertEquals(CallPolicy.Action.ACCEPT, call.decision().orElseThrow().action(), () -> call.display());
        assertTrue(sha256.log().contains("authenticated INVITE from alice"), () -> "alice answered the proxy's 407;"
                + " kamailio:\n" + sha256.log());
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        assertEquals(Call.State.ESTABLISHED, atBob.state(), () -> atBob.reason() + "\n" + sha256.logTail(60));
        assertEquals(IntegrityLevel.UNATTESTED, atBob.peer().orElseThrow().level(),
                () -> "bob's first hop: the proxy; " + atBob.display());
        assertEquals("sip:alice@" + DOMAIN, atBob.peerUri(), atBob::toString);
        AudioSession aliceAudio = call.audio().orElseThrow();
        AudioSession bobAudio = atBob.audio().orElseThrow();
        Tones.eachHearsTheOther(aliceAudio, bobAudio, 8_000);
        alice.hangUp(call);
        Await.until("bob's call to end", Duration.ofSeconds(10), atBob::state, st -> st == Call.State.ENDED);
        assertEquals("the peer hung up", atBob.reason(), () -> "the BYE went through the proxy (Record-Route): " + atBob
                + "\nkamailio:\n" + sha256.log());
    }

    @Test
    void aCallerRequiringMeasured_refusesTheUnattestedProxyHop_beforeTheInvite() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", MEASURED_ONLY, null);
        SipPhone bob = phone(hosts.bob(), "bob", ALLOW_PROXY, null);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("refused by our call policy: peer level UNATTESTED is below the required"
                + " MEASURED"), () -> "our policy refuses the UNATTESTED proxy hop; the call: " + call + ", "
                + call.display());
        // Shown by bob moving on: a later call through the same proxy from a phone that allows it reaches bob; the
        // refused INVITE, had it left, would have been there first.
        SipPhone allowing = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        Registration rl = registered(allowing, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        Call later = allowing.await(allowing.call("sip:bob@" + DOMAIN, rl));
        assertEquals(Call.State.ESTABLISHED, later.state(), () -> later + "\nkamailio:\n" + sha256.log());
        Call laterAtBob = bob.await(bob.callById(later.callId()).orElseThrow(
                () -> new AssertionError("bob has no call " + later.callId() + ": " + bob.calls())));
        assertEquals(Call.State.ESTABLISHED, laterAtBob.state(), laterAtBob::toString);
        assertTrue(bob.callById(call.callId()).isEmpty(), () -> "no INVITE reached bob; bob's calls: " + bob.calls());
        allowing.hangUp(later);
    }

    @Test
    void aCalleeRequiringMeasured_refuses403_throughTheProxy_withAWarning() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        SipPhone bob = phone(hosts.bob(), "bob", MEASURED_ONLY, null);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.REFUSED, call.state(), () -> call + "\nkamailio:\n" + sha256.log());
        assertTrue(call.reason().startsWith("403") && call.reason().contains("peer level UNATTESTED is below the"
                + " required MEASURED"), () -> "a 403 naming both levels; the call: " + call + "\n"
                + sha256.logTail(60));
        Call atBob = bob.callById(call.callId()).orElseThrow();
        assertEquals(IntegrityLevel.UNATTESTED, atBob.peer().orElseThrow().level(), atBob::display);
    }
}
