package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.SrtpKeys;
import io.tpmphone.keystore.SrtpSuite;
import io.tpmphone.softphone.AgentBroker;
import io.tpmphone.softphone.BrokerRefusedException;
import io.tpmphone.softphone.SrtpKeyMaterial;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The broker's key operations over the real socket, with the child's real client, and its answers to bad input. */
class BrokerKeyProtocolTest {

    /** A keystore stand-in: key = 0x11.., salt = 0x22..; refuses the call id "refused" and any offered 0x33 key. */
    private static final class FakeKeys implements Broker.Service {
        final List<SrtpKeys> issued = new ArrayList<>();
        final List<String> offeredFor = new ArrayList<>();

        @Override
        public String quote(byte[] binder) {
            return "akId=00";
        }

        @Override
        public SrtpKeys srtpKey(String callId, SrtpSuite suite) throws KeystoreException {
            if (callId.equals("refused")) {
                throw new KeystoreException(KeystoreException.Reason.NOT_APPROVED, "the state is not approved");
            }
            byte[] k = new byte[suite.keyLength()];
            byte[] s = new byte[suite.saltLength()];
            Arrays.fill(k, (byte) 0x11);
            Arrays.fill(s, (byte) 0x22);
            SrtpKeys keys = new SrtpKeys(suite, SecretBytes.copyOf(k), SecretBytes.copyOf(s));
            issued.add(keys);
            return keys;
        }

        @Override
        public void checkOffered(byte[] fingerprint, String callId) throws KeystoreException {
            offeredFor.add(callId);
            byte[] replayed = new byte[30];
            replayed[0] = 0x33;
            if (java.util.Arrays.equals(fingerprint, io.tpmphone.attestation.HashAlgorithm.SHA256.digest(replayed))) {
                throw new KeystoreException(KeystoreException.Reason.SEEN_BEFORE, "a replayed offer");
            }
        }

        @Override
        public byte[] sign(byte[] digest) {
            return new byte[] {0x30, 0x00, digest[0]};
        }

        @Override
        public List<byte[]> certificateChain() {
            return List.of(new byte[] {1, 2}, new byte[] {3});
        }
    }

    @Test
    void keysSignaturesAndCertificates_reachTheChild_andRefusalsNameTheReason(@TempDir Path dir) throws Exception {
        FakeKeys keys = new FakeKeys();
        try (Broker broker = Broker.start(dir, keys);
             AgentBroker child = AgentBroker.connect(broker.socketPath(), broker.token())) {
            try (SrtpKeyMaterial m = child.srtpKey("AES_CM_128_HMAC_SHA1_80", "call-1@example.org")) {
                byte[] k = new byte[16];
                byte[] s = new byte[14];
                Arrays.fill(k, (byte) 0x11);
                Arrays.fill(s, (byte) 0x22);
                assertArrayEquals(k, m.key());
                assertArrayEquals(s, m.salt());
            }
            assertTrue(keys.issued.get(0).isDestroyed(), "the broker destroyed the keys it sent");

            BrokerRefusedException refused = assertThrows(BrokerRefusedException.class,
                    () -> child.srtpKey("AES_CM_128_HMAC_SHA1_80", "refused"));
            assertEquals("NOT_APPROVED", refused.reason());
            assertTrue(refused.getMessage().contains("not approved"), refused.getMessage());

            child.checkOffered(new byte[16], new byte[14], "call-2");
            byte[] replayed = new byte[16];
            replayed[0] = 0x33;
            assertEquals("SEEN_BEFORE", assertThrows(BrokerRefusedException.class,
                    () -> child.checkOffered(replayed, new byte[14], "call-3")).reason());
            assertEquals(List.of("call-2", "call-3"), keys.offeredFor);

            byte[] digest = new byte[32];
            digest[0] = 7;
            assertArrayEquals(new byte[] {0x30, 0x00, 7}, child.sign(digest));
            List<byte[]> chain = child.certificates();
            assertEquals(2, chain.size());
            assertArrayEquals(new byte[] {3}, chain.get(1));

            assertEquals("BAD_REQUEST", assertThrows(BrokerRefusedException.class,
                    () -> child.srtpKey("NOT_A_SUITE", "call-4")).reason());
            assertEquals("BAD_REQUEST", assertThrows(BrokerRefusedException.class,
                    () -> child.sign(new byte[31])).reason());
            // The session survives every refusal.
            child.srtpKey("AES_CM_128_HMAC_SHA1_32", "call-5").close();
        }
    }

    @Test
    void malformedKeyRequests_getErrBadRequest_andTheSessionContinues(@TempDir Path dir) throws Exception {
        try (Broker broker = Broker.start(dir, new FakeKeys());
             SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(broker.socketPath()));
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch),
                    StandardCharsets.UTF_8));
            OutputStream out = Channels.newOutputStream(ch);
            out.write(("HELLO " + broker.token() + "\n").getBytes(StandardCharsets.UTF_8));
            assertEquals("OK", in.readLine());
            for (String bad : List.of("SRTPKEY", "SRTPKEY AES_CM_128_HMAC_SHA1_80", "SRTPKEY a b c",
                    "OFFERED !!! c", "OFFERED " + "ab".repeat(31) + " c", "OFFERED " + "ab".repeat(32), "SIGN zz", "SIGN " + HexFormat.of().formatHex(new byte[64]),
                    "SRTPKEY AES_CM_128_HMAC_SHA1_80 " + "x".repeat(2000))) {
                out.write((bad + "\n").getBytes(StandardCharsets.UTF_8));
                String answer = in.readLine();
                assertTrue(answer.startsWith("ERR BAD_REQUEST "), bad + " -> " + answer);
            }
            out.write("CERTS\n".getBytes(StandardCharsets.UTF_8));
            assertTrue(in.readLine().startsWith("OK "));
        }
    }

    @Test
    void aCallDecisionsStructuredFields_reachTheService_andMalformedOnesAreRefused(@TempDir Path dir)
            throws Exception {
        List<String> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        Broker.Service service = new Broker.Service() {
            @Override
            public String quote(byte[] binder) {
                return "akId=00";
            }

            @Override
            public void callDecision(String direction, String action, String peerUri, String peerLevel,
                                     String requiredLevel, String callId, String reason) {
                seen.add(direction + " " + action + " " + peerLevel + " " + callId + " no fields: " + reason);
            }

            @Override
            public void callDecision(String direction, String action, String peerUri, String peerLevel,
                                     String requiredLevel, String callId, String reason, Broker.DecisionFields f) {
                seen.add(direction + " " + action + " " + peerLevel + " " + callId + " " + f.established() + " "
                        + f.evidenceSha256().orElse("none") + " " + f.resultAgeSeconds().map(String::valueOf)
                        .orElse("unknown") + ": " + reason);
            }
        };
        String digest = "ab".repeat(32);
        try (Broker broker = Broker.start(dir, service);
             AgentBroker child = AgentBroker.connect(broker.socketPath(), broker.token())) {
            child.reportDecision("OUT", "ACCEPT", "MEASURED", "MEASURED", "c1", "sip:bob@example.org", true, digest,
                    42, "end-to-end DTLS: far end level MEASURED meets MEASURED");
            child.reportDecision("IN", "REJECT", "UNATTESTED", "MEASURED", "c2", "sip:x@example.org", false, "", -1,
                    "one hop: below");
            child.reportDecision("IN", "ACCEPT", "MEASURED", "MEASURED", "c3", "sip:y@example.org", "an old child");
            // a first-format line whose reason starts as the fields do is one reason, not fields (its own verb now)
            child.reportDecision("IN", "ACCEPT", "MEASURED", "MEASURED", "c5", "sip:y@example.org",
                    "END_TO_END - - looked like fields");
            assertEquals(List.of(
                    "OUT ACCEPT MEASURED c1 end-to-end DTLS " + digest
                            + " 42: end-to-end DTLS: far end level MEASURED meets MEASURED",
                    "IN REJECT UNATTESTED c2 one hop none unknown: one hop: below",
                    "IN ACCEPT MEASURED c3 no fields: an old child",
                    "IN ACCEPT MEASURED c5 no fields: END_TO_END - - looked like fields"), seen);
            assertThrows(IllegalArgumentException.class, () -> child.reportDecision("IN", "ACCEPT", "MEASURED",
                    "MEASURED", "c4", "sip:y@example.org", true, digest.toUpperCase(java.util.Locale.ROOT), 1, "r"),
                    "the child's client refuses a digest that is not lower-case hex");
        }
        try (Broker broker = Broker.start(dir.resolve("2"), service);
             SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(broker.socketPath()));
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch),
                    StandardCharsets.UTF_8));
            OutputStream out = Channels.newOutputStream(ch);
            out.write(("HELLO " + broker.token() + "\n").getBytes(StandardCharsets.UTF_8));
            assertEquals("OK", in.readLine());
            String head = "DECISION2 IN ACCEPT MEASURED MEASURED c5 sip:z@example.org ";
            for (String bad : List.of(head + "END_TO_END " + digest.substring(2) + " 1 reason",
                    head + "END_TO_END " + digest.toUpperCase(java.util.Locale.ROOT) + " 1 reason",
                    head + "ONE_HOP - -5 reason", head + "ONE_HOP - 1.5 reason",
                    head + "ONE_HOP - 99999999999 reason")) {
                int before = seen.size();
                out.write((bad + "\n").getBytes(StandardCharsets.UTF_8));
                String answer = in.readLine();
                assertTrue(answer.startsWith("ERR BAD_REQUEST "), bad + " -> " + answer);
                assertEquals(before, seen.size(), () -> "nothing recorded for " + bad + ": " + seen);
            }
        }
    }

    @Test
    void withoutAKeystore_keyRequestsAreUnavailable(@TempDir Path dir) throws Exception {
        try (Broker broker = Broker.start(dir, binder -> "akId=00");
             AgentBroker child = AgentBroker.connect(broker.socketPath(), broker.token())) {
            assertEquals("UNAVAILABLE", assertThrows(BrokerRefusedException.class,
                    () -> child.srtpKey("AES_CM_128_HMAC_SHA1_80", "c")).reason());
        }
    }

    @Test
    void thePhraseAndTheSoundGrant_reachTheService_andTheirAbsenceIsNamed(@TempDir Path dir) throws Exception {
        java.util.List<String> sound = new java.util.concurrent.CopyOnWriteArrayList<>();
        Broker.Service service = new Broker.Service() {
            @Override
            public String quote(byte[] binder) {
                return "akId=00";
            }

            @Override
            public java.util.Optional<String> phrase() {
                return java.util.Optional.of("purple élephant");
            }

            @Override
            public void sound(boolean open, String callId) {
                sound.add((open ? "open " : "close ") + callId);
            }
        };
        try (Broker broker = Broker.start(dir.resolve("a"), service);
             AgentBroker child = AgentBroker.connect(broker.socketPath(), broker.token())) {
            assertEquals(java.util.Optional.of("purple élephant"), child.phrase(), "the phrase, UTF-8 intact");
            child.sound(true, "call 1");
            child.sound(false, "call 1");
            assertEquals(List.of("open call_1", "close call_1"), sound, "each grant and its end reach the agent");
        }
        try (Broker broker = Broker.start(dir.resolve("b"), binder -> "akId=00");
             AgentBroker child = AgentBroker.connect(broker.socketPath(), broker.token())) {
            assertEquals(java.util.Optional.empty(), child.phrase(), "no phrase set: empty, not an error");
            assertEquals("UNAVAILABLE", assertThrows(BrokerRefusedException.class,
                    () -> child.sound(true, "c")).reason(), "no sound server configured");
        }
    }

    @Test
    void soundOpen_isRefusedUntilTheChildsDecisionAcceptedThatCall_andAfterItsRejection(@TempDir Path dir)
            throws Exception {
        // no sound server behind it: a refusal comes before any pactl, a granted open fails at pactl (FAILED)
        try (SoundGrant grant = new SoundGrant("unix:" + dir.resolve("no-server"), dir.resolve("sound"))) {
            Broker.Service service = new Broker.Service() {
                @Override
                public String quote(byte[] binder) {
                    return "akId=00";
                }

                @Override
                public void callDecision(String direction, String action, String peerUri, String peerLevel,
                                         String requiredLevel, String callId, String reason) {
                    grant.decided(action, callId); // as the agent does
                }

                @Override
                public void sound(boolean open, String callId) throws java.io.IOException {
                    if (open) {
                        grant.open(callId);
                    } else {
                        grant.close(callId);
                    }
                }
            };
            try (Broker broker = Broker.start(dir.resolve("a"), service);
                 AgentBroker child = AgentBroker.connect(broker.socketPath(), broker.token())) {
                BrokerRefusedException never = assertThrows(BrokerRefusedException.class,
                        () -> child.sound(true, "call-1"));
                assertEquals("NOT_ACCEPTED", never.reason(), "no decision for call-1 yet: " + never.getMessage());
                child.reportDecision("IN", "REJECT", "FAILED", "MEASURED", "call-1", "sip:x@y", "policy refused");
                assertEquals("NOT_ACCEPTED", assertThrows(BrokerRefusedException.class,
                        () -> child.sound(true, "call-1#ring")).reason(), "a rejected call rings nowhere");
                child.reportDecision("IN", "ACCEPT", "MEASURED", "MEASURED", "call-2", "sip:x@y", "meets the floor");
                BrokerRefusedException granted = assertThrows(BrokerRefusedException.class,
                        () -> child.sound(true, "call-2#ring"));
                assertEquals("FAILED", granted.reason(), "an accepted call's ringing gets as far as the sound server"
                        + " (absent here): " + granted.getMessage());
                assertEquals("NOT_ACCEPTED", assertThrows(BrokerRefusedException.class,
                        () -> child.sound(true, "call-2x")).reason(), "only that call id");
            }
        }
    }
}
