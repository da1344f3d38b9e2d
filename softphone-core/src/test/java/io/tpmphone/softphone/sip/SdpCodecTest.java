package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** RFC 3264 §6.1: the answer takes the offerer's first listed codec that we support, and lists only it. */
class SdpCodecTest {
    @Test
    void theOfferersPreferenceWins_amongWhatWeSupport() {
        assertEquals(Optional.of(0), Sdp.choose(List.of(0, 101)), "baresip's offer: PCMU and telephone-event");
        assertEquals(Optional.of(8), Sdp.choose(List.of(8, 0)), "PCMA first");
        assertEquals(Optional.of(8), Sdp.choose(List.of(9, 18, 8)), "G.722 and G.729 skipped");
        assertEquals(Optional.empty(), Sdp.choose(List.of(9, 111)), "nothing in common: the caller gets 488");
    }

    @Test
    void opus_isChosenByItsRtpmap_atTheOfferersPayloadType() {
        Sdp offer = Sdp.parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                + "m=audio 4000 RTP/SAVP 96 0 101\r\na=rtpmap:96 OPUS/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n");
        assertEquals(Optional.of(96), Sdp.choose(offer, Sdp.OPUS_FIRST), "Opus at the offerer's number 96");
        assertEquals(Optional.of(0), Sdp.choose(offer, Sdp.AUDIO_PAYLOADS), "no Opus without real audio: PCMU");
        Sdp notOpus = Sdp.parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 111 8\r\n"
                + "a=rtpmap:111 speex/16000\r\n");
        assertEquals(Optional.of(8), Sdp.choose(notOpus, Sdp.OPUS_FIRST), "111 named speex is not our Opus");
        Sdp unnamed = Sdp.parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 111\r\n");
        assertEquals(Optional.empty(), Sdp.choose(unnamed, Sdp.OPUS_FIRST), "a dynamic type without rtpmap is"
                + " nothing");
    }

    @Test
    void ourOffer_namesOpusFirst_andReadsBack() {
        String offer = new Sdp("127.0.0.1", 40000, Sdp.OPUS_FIRST, List.of()).encode("alice", 1L);
        assertTrue(offer.contains("m=audio 40000 RTP/SAVP 111 0 8\r\na=rtpmap:111 opus/48000/2\r\n"), offer);
        Sdp parsed = Sdp.parse(offer);
        assertTrue(parsed.isOpus(111), offer);
        assertEquals(Optional.of(111), Sdp.choose(parsed, Sdp.OPUS_FIRST), offer);
    }

    @Test
    void aHostileRtpmap_isIgnored_neverEchoed() {
        Sdp offer = Sdp.parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 96\r\n"
                + "a=rtpmap:96 opus/48000/2\u001b[31m\r\n");
        assertEquals(Optional.empty(), Sdp.choose(offer, Sdp.OPUS_FIRST), "an rtpmap with control characters maps"
                + " nothing");
    }

    @Test
    void anAnswerListsOnlyTheChosenCodec() {
        String answer = new Sdp("127.0.0.1", 40000, List.of(8), List.of()).encode("bob", 1L);
        Sdp parsed = Sdp.parse(answer);
        assertEquals(List.of(8), parsed.payloadTypes(), answer);
    }
}
