package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
    void anAnswerListsOnlyTheChosenCodec() {
        String answer = new Sdp("127.0.0.1", 40000, List.of(8), List.of()).encode("bob", 1L);
        Sdp parsed = Sdp.parse(answer);
        assertEquals(List.of(8), parsed.payloadTypes(), answer);
    }
}
