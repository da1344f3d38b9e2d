package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSetup;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** DTLS-SRTP in SDP (RFC 5763, RFC 8122, RFC 8842): what we write, and how strictly we read the far end's. */
@Timeout(10)
class SdpDtlsSrtpTest {
    private static final DtlsFingerprint OURS = DtlsFingerprint.sha256("our certificate".getBytes(
            StandardCharsets.US_ASCII));

    @Test
    void anOffer_carriesTheFingerprintActpassAndRtcpMux_andNoKeys() {
        Sdp offer = Sdp.dtlsSrtp("192.0.2.1", 40000, Sdp.AUDIO_PAYLOADS, Sdp.DtlsAttributes.of(OURS,
                DtlsSetup.ACTPASS));
        String text = offer.encode("alice", 7);
        assertTrue(text.contains("m=audio 40000 UDP/TLS/RTP/SAVP 0 8\r\n"), text);
        assertTrue(text.contains("a=fingerprint:" + OURS.toSdp() + "\r\n"), text);
        assertTrue(text.contains("a=setup:actpass\r\n"), text);
        assertTrue(text.contains("a=rtcp-mux\r\n"), text);
        assertFalse(text.contains("a=crypto"), "no SDES keys beside DTLS-SRTP: " + text);
        Sdp back = Sdp.parse(text);
        assertEquals(offer, back, "it reads back as written");
    }

    @Test
    void baresipsAnswer_isRead() {
        // The shape baresip's dtls_srtp module answers with (session-level fingerprint, SAVPF, extra attributes).
        String answer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "a=fingerprint:sha-256 " + OURS.toSdp().substring(8) + "\r\n"
                + "a=tls-id:4b3e\r\n"
                + "m=audio 5004 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=setup:active\r\n"
                + "a=rtcp-mux\r\na=sendrecv\r\na=ssrc:1 cname:x\r\n";
        Sdp sdp = Sdp.parse(answer);
        Sdp.DtlsAttributes d = sdp.dtls().orElseThrow();
        assertEquals(List.of(OURS), d.fingerprints(), "the session-level fingerprint applies");
        assertEquals(DtlsSetup.ACTIVE, d.setup());
        assertTrue(d.rtcpMux());
        assertEquals(5004, sdp.port());
    }

    @Test
    void aMediaFingerprint_overridesTheSessionOne_andOtherHashFunctionsAreSkipped() {
        DtlsFingerprint media = DtlsFingerprint.sha256(new byte[] {1});
        String text = "v=0\r\nc=IN IP4 192.0.2.2\r\na=fingerprint:" + OURS.toSdp() + "\r\n"
                + "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:sha-1 " + "AB:".repeat(19) + "AB\r\n"
                + "a=fingerprint:" + media.toSdp() + "\r\na=setup:passive\r\n";
        Sdp.DtlsAttributes d = Sdp.parse(text).dtls().orElseThrow();
        assertEquals(List.of(media), d.fingerprints());
        assertEquals(DtlsSetup.PASSIVE, d.setup());
        assertFalse(d.rtcpMux());
    }

    @Test
    void withoutASetupAttribute_thePeerIsActive() {
        String text = "v=0\r\nc=IN IP4 192.0.2.2\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:"
                + OURS.toSdp() + "\r\n";
        assertEquals(DtlsSetup.ACTIVE, Sdp.parse(text).dtls().orElseThrow().setup(), "RFC 4145 §4's default");
    }

    @Test
    void sdesKeysBesideDtlsSrtp_areIgnored() {
        String text = "v=0\r\nc=IN IP4 192.0.2.2\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:"
                + OURS.toSdp() + "\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
                + "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        Sdp sdp = Sdp.parse(text);
        assertTrue(sdp.cryptos().isEmpty(), "keys come from the handshake, never from the signalling");
        assertTrue(sdp.dtls().isPresent());
    }

    @Test
    void malformedDtlsAttributes_areRefused_withAReason() {
        String head = "v=0\r\nc=IN IP4 192.0.2.2\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\n";
        assertRefused(head, "no a=fingerprint");
        assertRefused(head + "a=fingerprint:sha-1 " + "AB:".repeat(19) + "AB\r\n",
                "only a hash function we do not check");
        assertRefused(head + "a=fingerprint:sha-256 AB:CD\r\n", "a short sha-256 fingerprint");
        assertRefused(head + "a=fingerprint:" + OURS.toSdp() + "\r\na=setup:sideways\r\n", "an unknown setup");
        assertRefused(head + ("a=fingerprint:" + OURS.toSdp() + "\r\n").repeat(5), "too many fingerprints");
        assertRefused(head + "a=fingerprint:sha-256 " + "\u001b[31mMEASURED".repeat(12) + "\r\n",
                "terminal escapes in a fingerprint");
    }

    @Test
    void everyFingerprintAttribute_isKept_orRefusedWithItsReason() {
        // RFC 8122 §5: several fingerprints (several certificates, several hash functions) are all kept for the
        // handshake's check; a registered function we do not check (sha-1, sha-224) is skipped if well formed.
        DtlsFingerprint second = DtlsFingerprint.sha256(new byte[] {2});
        String head = "v=0\r\nc=IN IP4 192.0.2.2\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\n";
        String sha1 = "a=fingerprint:sha-1 " + "AB:".repeat(19) + "AB\r\n";
        Sdp.DtlsAttributes d = Sdp.parse(head + "a=fingerprint:" + OURS.toSdp() + "\r\n" + sha1
                + "a=fingerprint:" + second.toSdp() + "\r\n").dtls().orElseThrow();
        assertEquals(List.of(OURS, second), d.fingerprints(), "both sha-256 fingerprints are kept, in order");
        String sha512 = "sha-512 " + "0F:".repeat(63) + "0F";
        d = Sdp.parse(head + "a=fingerprint:" + OURS.toSdp() + "\r\na=fingerprint:" + sha512 + "\r\n").dtls()
                .orElseThrow();
        assertEquals(2, d.fingerprints().size(), d.toString());
        assertEquals("sha-512", DtlsFingerprint.preferredFunction(d.fingerprints()), "the strongest is checked");
        // each of these beside a good sha-256 fingerprint still refuses the SDP, with its own reason
        String good = "a=fingerprint:" + OURS.toSdp() + "\r\n";
        assertRefusedWith(head + good + "a=fingerprint:md5 " + "AB:".repeat(15) + "AB\r\n", "md5",
                "RFC 8122 forbids");
        assertRefusedWith(head + good + "a=fingerprint:blake-9 AB:CD\r\n", "an unregistered hash function",
                "not in the IANA registry");
        assertRefusedWith(head + good + "a=fingerprint:sha-1 AB:CD\r\n", "a short sha-1 fingerprint",
                "20 colon-separated hex pairs");
        assertRefusedWith(head + good + "a=fingerprint:sha-224\r\n", "a sha-224 without a value",
                "28 colon-separated hex pairs");
        assertRefusedWith(head + good + "a=fingerprint:sha-384 " + "AB-".repeat(47) + "AB\r\n",
                "a sha-384 with the wrong separators", "colon-separated hex pairs");
        assertRefusedWith(head + good + sha1.repeat(4), "five fingerprint attributes, four skipped",
                "more than " + Sdp.MAX_FINGERPRINTS);
    }

    @Test
    void theMediaIdentityOfAFinalAnswer_isComparedWithTheEarlyOne() {
        Sdp early = Sdp.dtlsSrtp("192.0.2.1", 40000, List.of(0), Sdp.DtlsAttributes.of(OURS, DtlsSetup.ACTIVE));
        assertTrue(early.mediaIdentityChange(Sdp.parse(early.encode("bob", 2))).isEmpty(), "the same SDP again");
        DtlsFingerprint other = DtlsFingerprint.sha256(new byte[] {9});
        assertEquals("a=fingerprint", early.mediaIdentityChange(Sdp.dtlsSrtp("192.0.2.1", 40000, List.of(0),
                Sdp.DtlsAttributes.of(other, DtlsSetup.ACTIVE))).orElseThrow());
        assertEquals("connection address, port 40000 → 40002, a=setup active → passive", early.mediaIdentityChange(
                Sdp.dtlsSrtp("192.0.2.9", 40002, List.of(0), Sdp.DtlsAttributes.of(OURS, DtlsSetup.PASSIVE)))
                .orElseThrow());
        assertEquals("media protocol", early.mediaIdentityChange(new Sdp("192.0.2.1", 40000, List.of(0),
                List.of())).orElseThrow());
    }

    @Test
    void aReOffer_keepsTheAssociation_onlyWithTheSameIdentityAndRole() {
        Sdp offer = Sdp.dtlsSrtp("192.0.2.1", 40000, List.of(0), Sdp.DtlsAttributes.of(OURS, DtlsSetup.ACTPASS));
        for (DtlsSetup same : List.of(DtlsSetup.ACTPASS, DtlsSetup.PASSIVE)) {
            assertTrue(offer.associationChange(Sdp.dtlsSrtp("192.0.2.1", 40000, List.of(0), Sdp.DtlsAttributes.of(
                    OURS, same)).withDirection("sendonly")).isEmpty(), "the offerer re-offers as " + same);
        }
        assertEquals("a=setup actpass → active", offer.associationChange(Sdp.dtlsSrtp("192.0.2.1", 40000,
                List.of(0), Sdp.DtlsAttributes.of(OURS, DtlsSetup.ACTIVE))).orElseThrow(), "a role flip");
        assertEquals("a=fingerprint", offer.associationChange(Sdp.dtlsSrtp("192.0.2.1", 40000, List.of(0),
                Sdp.DtlsAttributes.of(DtlsFingerprint.sha256(new byte[] {3}), DtlsSetup.ACTPASS))).orElseThrow());
        Sdp answer = Sdp.dtlsSrtp("192.0.2.2", 5000, List.of(0), Sdp.DtlsAttributes.of(OURS, DtlsSetup.ACTIVE));
        assertTrue(answer.associationChange(answer.withDirection("recvonly")).isEmpty());
        assertEquals("a=setup active → passive", answer.associationChange(Sdp.dtlsSrtp("192.0.2.2", 5000,
                List.of(0), Sdp.DtlsAttributes.of(OURS, DtlsSetup.PASSIVE))).orElseThrow());
    }

    private static void assertRefusedWith(String sdp, String what, String reason) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sdp.parse(sdp), what);
        assertTrue(e.getMessage().contains(reason), what + ": " + e.getMessage());
        assertFalse(e.getMessage().contains("AB:") || e.getMessage().contains("blake"),
                "the reason does not echo the value: " + e.getMessage());
    }

    @Test
    void anSdesStream_hasNoDtlsAttributes() {
        String text = "v=0\r\nc=IN IP4 192.0.2.2\r\nm=audio 4000 RTP/SAVP 0\r\na=fingerprint:" + OURS.toSdp()
                + "\r\n";
        assertTrue(Sdp.parse(text).dtls().isEmpty(), "a fingerprint on an RTP/SAVP stream means nothing");
    }

    private static void assertRefused(String sdp, String what) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sdp.parse(sdp), what);
        assertFalse(e.getMessage().contains("\u001b"), "the reason carries no peer escapes: " + e.getMessage());
    }
}
