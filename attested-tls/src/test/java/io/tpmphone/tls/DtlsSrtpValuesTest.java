package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The SDP attributes, the SRTP key split, the DTLS binder and the evidence-exchange state machine. */
@Timeout(30)
class DtlsSrtpValuesTest {
    private static final byte[] CERT = "not really DER, any bytes hash".getBytes(StandardCharsets.US_ASCII);

    // ---- a=fingerprint -----------------------------------------------------------------------------------------

    @Test
    void aFingerprint_roundTripsThroughSdp_andMatchesItsCertificateOnly() throws Exception {
        DtlsFingerprint f = DtlsFingerprint.sha256(CERT);
        String sdp = f.toSdp();
        assertTrue(sdp.matches("sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}"), sdp);
        assertArrayEquals(MessageDigest.getInstance("SHA-256").digest(CERT), f.digest());
        DtlsFingerprint parsed = DtlsFingerprint.parse(sdp);
        assertEquals(f, parsed);
        assertTrue(parsed.matches(CERT));
        assertFalse(parsed.matches("other".getBytes(StandardCharsets.US_ASCII)));
        assertEquals(f, DtlsFingerprint.parse("SHA-256 " + sdp.substring(8).toLowerCase()), "case-insensitive");
    }

    @Test
    void sha384AndSha512Fingerprints_areAccepted() throws Exception {
        String hex384 = HexFormat.ofDelimiter(":").formatHex(MessageDigest.getInstance("SHA-384").digest(CERT));
        assertTrue(DtlsFingerprint.parse("sha-384 " + hex384).matches(CERT));
        String hex512 = HexFormat.ofDelimiter(":").formatHex(MessageDigest.getInstance("SHA-512").digest(CERT));
        assertTrue(DtlsFingerprint.parse("sha-512 " + hex512).matches(CERT));
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "", "sha-256", "sha-256 ", " sha-256 AB", "md5 AB:CD", "sha-1 " + "AB:" + "CD",
        "sha-256 AB:CD", "sha-256 GG:", "sha-256  AB", "sha-256 AB CD",
    })
    void malformedFingerprints_areRefused(String value) {
        MalformedExtensionException e = assertThrows(MalformedExtensionException.class,
                () -> DtlsFingerprint.parse(value));
        assertFalse(value.length() > 10 && e.getMessage().contains(value.substring(8)),
                "the message does not echo the peer's value: " + e.getMessage());
    }

    @Test
    void fingerprintsWithTheRightLengthButBadSeparatorsOrDigits_areRefused() {
        String good = DtlsFingerprint.sha256(CERT).toSdp();
        for (String bad : List.of(good.replace(':', '-'), good.substring(0, 9) + "+" + good.substring(10),
                good.substring(0, 9) + "\u0661" + good.substring(10), good + ":", good.replaceFirst(" ", "\t"))) {
            assertThrows(MalformedExtensionException.class, () -> DtlsFingerprint.parse(bad), bad);
        }
        assertThrows(MalformedExtensionException.class, () -> DtlsFingerprint.parse("sha-256 " + "A".repeat(5000)));
        assertThrows(MalformedExtensionException.class, () -> DtlsFingerprint.parse(null));
    }

    // ---- a=setup -----------------------------------------------------------------------------------------------

    @Test
    void theAnswererIsActive_unlessTheOffererIs() throws Exception {
        assertEquals(DtlsSetup.ACTIVE, DtlsSetup.parse("actpass").answer());
        assertEquals(DtlsSetup.ACTIVE, DtlsSetup.parse("passive").answer());
        assertEquals(DtlsSetup.PASSIVE, DtlsSetup.parse("ACTIVE").answer());
        assertEquals(DtlsSetup.PASSIVE, DtlsSetup.offererRole(DtlsSetup.ACTIVE));
        assertEquals(DtlsSetup.ACTIVE, DtlsSetup.offererRole(DtlsSetup.PASSIVE));
        assertTrue(DtlsSetup.ACTIVE.isClient());
        assertFalse(DtlsSetup.PASSIVE.isClient());
        assertThrows(MalformedExtensionException.class, () -> DtlsSetup.parse("holdconn").answer());
        assertThrows(MalformedExtensionException.class, () -> DtlsSetup.offererRole(DtlsSetup.ACTPASS));
        assertThrows(MalformedExtensionException.class, () -> DtlsSetup.parse("both"));
        assertThrows(MalformedExtensionException.class, () -> DtlsSetup.parse(null));
    }

    // ---- SRTP keys ---------------------------------------------------------------------------------------------

    @Test
    void theExporterOutput_isSplitAsRfc5764Says_andWiped() {
        byte[] material = new byte[60];
        for (int i = 0; i < material.length; i++) {
            material[i] = (byte) i;
        }
        SrtpKeys client = SrtpKeys.fromExporter(SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80, material.clone(), true);
        byte[] copy = material.clone();
        SrtpKeys server = SrtpKeys.fromExporter(SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80, copy, false);
        assertArrayEquals(new byte[60], copy, "the exporter output is wiped");
        assertArrayEquals(java.util.Arrays.copyOfRange(material, 0, 16), client.localKey(), "client_write_key");
        assertArrayEquals(java.util.Arrays.copyOfRange(material, 16, 32), client.remoteKey(), "server_write_key");
        assertArrayEquals(java.util.Arrays.copyOfRange(material, 32, 46), client.localSalt(), "client_write_salt");
        assertArrayEquals(java.util.Arrays.copyOfRange(material, 46, 60), client.remoteSalt(), "server_write_salt");
        assertArrayEquals(client.localKey(), server.remoteKey());
        assertArrayEquals(client.remoteSalt(), server.localSalt());
        assertFalse(client.toString().contains("00010203"), "toString shows no key: " + client);
        assertThrows(IllegalArgumentException.class, () -> SrtpKeys.fromExporter(7, new byte[60], true));
        assertThrows(IllegalArgumentException.class,
                () -> SrtpKeys.fromExporter(SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80, new byte[59], true));
    }

    // ---- the DTLS binder ---------------------------------------------------------------------------------------

    @Test
    void theDtlsBinder_coversDirectionExporterKeyAndNonce() throws Exception {
        byte[] exporter = new byte[32];
        byte[] spki = {1, 2, 3};
        byte[] nonce = new byte[32];
        byte[] b = Binder.computeDtls(true, exporter, spki, nonce);
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        sha.update(Binder.DTLS_SERVER_LABEL.getBytes(StandardCharsets.US_ASCII));
        sha.update(exporter);
        sha.update(MessageDigest.getInstance("SHA-256").digest(spki));
        sha.update(nonce);
        assertArrayEquals(sha.digest(), b, "SHA-256(label || exporter || SHA-256(SPKI) || nonce)");
        assertFalse(java.util.Arrays.equals(b, Binder.computeDtls(false, exporter, spki, nonce)), "direction");
        byte[] otherExporter = exporter.clone();
        otherExporter[0] = 1;
        assertFalse(java.util.Arrays.equals(b, Binder.computeDtls(true, otherExporter, spki, nonce)), "exporter");
        assertFalse(java.util.Arrays.equals(b, Binder.computeDtls(true, exporter, new byte[] {1, 2, 4}, nonce)),
                "key");
        byte[] otherNonce = nonce.clone();
        otherNonce[31] = 1;
        assertFalse(java.util.Arrays.equals(b, Binder.computeDtls(true, exporter, spki, otherNonce)), "nonce");
        assertFalse(java.util.Arrays.equals(b, Binder.compute(true, exporter, exporter, spki, nonce)),
                "not the TLS binder");
        assertThrows(IllegalArgumentException.class, () -> Binder.computeDtls(true, new byte[31], spki, nonce));
    }

    // ---- the evidence exchange ---------------------------------------------------------------------------------

    @Test
    void evidenceLargerThanOneRecord_arrivesInFragments_inAnyOrder_andIsAcknowledged() throws Exception {
        byte[] aliceEvidence = new byte[3000];
        new Random(1).nextBytes(aliceEvidence);
        byte[] bobEvidence = new byte[700];
        new Random(2).nextBytes(bobEvidence);
        DtlsEvidenceExchange alice = new DtlsEvidenceExchange(aliceEvidence, true, 1000);
        DtlsEvidenceExchange bob = new DtlsEvidenceExchange(bobEvidence, true, 1000);
        List<byte[]> fromAlice = new java.util.ArrayList<>(alice.unacknowledgedFragments());
        assertEquals(4, fromAlice.size(), "3000 bytes in records of at most 1000 with a 6-byte header");
        java.util.Collections.reverse(fromAlice);
        for (byte[] r : fromAlice) {
            assertTrue(r.length <= 1000, "a record fits the send limit: " + r.length);
            bob.receive(r, r.length);
        }
        assertArrayEquals(aliceEvidence, bob.peerEvidence().orElseThrow());
        byte[] ack = bob.takeAcknowledgement().orElseThrow();
        assertTrue(bob.takeAcknowledgement().isEmpty(), "one acknowledgement per completion");
        alice.receive(ack, ack.length);
        assertTrue(alice.oursAcknowledged());
        assertTrue(alice.unacknowledgedFragments().isEmpty(), "nothing is resent after the acknowledgement");
        assertFalse(alice.done(), "bob's evidence is still missing");
        for (byte[] r : bob.unacknowledgedFragments()) {
            alice.receive(r, r.length);
        }
        assertTrue(alice.done());
        // A resent fragment (our acknowledgement was lost) is acknowledged again.
        byte[] again = fromAlice.get(0);
        bob.receive(again, again.length);
        assertTrue(bob.takeAcknowledgement().isPresent(), "a resent fragment is acknowledged again");
    }

    @Test
    void recordsThatBreakTheRules_areRefused_withoutKeepingAnything() throws Exception {
        byte[] evidence = new byte[100];
        DtlsEvidenceExchange sender = new DtlsEvidenceExchange(evidence, true, 64);
        byte[] first = sender.unacknowledgedFragments().get(0);
        DtlsEvidenceExchange x = new DtlsEvidenceExchange(new byte[10], true, 1200);
        assertThrows(MalformedExtensionException.class, () -> x.receive(new byte[5], 5), "short");
        assertThrows(MalformedExtensionException.class, () -> x.receive(record(2, 1, 10, 0, 0), 6), "version");
        assertThrows(MalformedExtensionException.class, () -> x.receive(record(1, 9, 10, 0, 0), 6), "type");
        assertThrows(MalformedExtensionException.class, () -> x.receive(record(1, 1, 0, 0, 1), 7), "empty");
        assertThrows(MalformedExtensionException.class,
                () -> x.receive(record(1, 1, DtlsEvidenceExchange.MAX_EVIDENCE + 1, 0, 1), 7), "too large");
        assertThrows(MalformedExtensionException.class, () -> x.receive(record(1, 1, 10, 9, 2), 8), "outside");
        assertThrows(MalformedExtensionException.class, () -> x.receive(record(1, 1, 10, 0, 0), 6), "no bytes");
        assertThrows(MalformedExtensionException.class, () -> x.receive(record(1, 2, 11, 0, 0), 6),
                "an acknowledgement of other evidence");
        x.receive(first, first.length);
        byte[] changed = first.clone();
        changed[changed.length - 1] ^= 1;
        assertThrows(MalformedExtensionException.class, () -> x.receive(changed, changed.length), "other bytes");
        byte[] otherLength = record(1, 1, 99, 0, 1);
        assertThrows(MalformedExtensionException.class, () -> x.receive(otherLength, otherLength.length),
                "another length");
        DtlsEvidenceExchange unannounced = new DtlsEvidenceExchange(null, false, 1200);
        assertThrows(MalformedExtensionException.class, () -> unannounced.receive(first, first.length),
                "evidence that was not announced");
        assertThrows(MalformedExtensionException.class, () -> unannounced.receive(record(1, 2, 1, 0, 0), 6),
                "an acknowledgement of nothing");
    }

    @Test
    void tenThousandRandomRecords_changeNothingButRefusals() {
        Random random = new Random(42);
        byte[] evidence = new byte[1500];
        random.nextBytes(evidence);
        DtlsEvidenceExchange x = new DtlsEvidenceExchange(evidence, true, 1200);
        int refused = 0;
        for (int i = 0; i < 10_000; i++) {
            byte[] r = new byte[random.nextInt(1300)];
            random.nextBytes(r);
            if (r.length > 0 && random.nextBoolean()) {
                r[0] = 1;
            }
            try {
                x.receive(r, r.length);
            } catch (MalformedExtensionException e) {
                refused++;
            }
        }
        assertTrue(refused > 9_000, "random records are refused: " + refused);
        assertFalse(x.oursAcknowledged(), "no random record acknowledged our evidence");
        assertEquals(2, x.unacknowledgedFragments().size(), "our evidence is still sent whole");
    }

    private static byte[] record(int version, int type, int total, int offset, int fragment) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(6 + fragment);
        b.put((byte) version).put((byte) type).putShort((short) total).putShort((short) offset);
        return b.array();
    }

    /**
     * A verdict that arrives during the evidence exchange is kept for the association: the first one only (as the
     * association keeps the first), and an acknowledgement (type 4) of a verdict we cannot have sent yet is ignored.
     * Before, the last record of either type replaced the first, so a far end could swap its ACCEPT for a REFUSE (or
     * hide its verdict behind an acknowledgement).
     */
    @Test
    void anEarlyVerdict_isTheFirstOne_andAcknowledgementsDuringTheExchangeAreIgnored() throws Exception {
        DtlsEvidenceExchange x = new DtlsEvidenceExchange(new byte[10], true, 1200);
        byte[] accept = new DtlsVerdict(true, io.tpmphone.attestation.IntegrityLevel.MEASURED,
                io.tpmphone.attestation.IntegrityLevel.IDENTIFIED).encode();
        byte[] refuse = new DtlsVerdict(false, io.tpmphone.attestation.IntegrityLevel.FAILED,
                io.tpmphone.attestation.IntegrityLevel.IDENTIFIED).encode();
        x.receive(accept, accept.length);
        x.receive(refuse, refuse.length);
        byte[] ack = DtlsVerdict.acknowledgement();
        x.receive(ack, ack.length);
        byte[] early = x.takeEarlyVerdict().orElseThrow(() -> new AssertionError("the early verdict was kept"));
        assertTrue(DtlsVerdict.decode(early, early.length).accept(), "the first verdict counts");
        assertArrayEquals(accept, early);
        assertFalse(x.takeEarlyVerdict().isPresent(), "taken once");
    }
}
