package io.tpmphone.softphone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.StringReader;
import java.util.Properties;
import org.junit.jupiter.api.Test;

class PhoneConfigTest {
    private static Properties props(String text) throws Exception {
        Properties p = new Properties();
        p.load(new StringReader(text));
        return p;
    }

    @Test
    void aFullConfiguration() throws Exception {
        PhoneConfig c = PhoneConfig.of(props("sip.user=alice\nsip.tls.port=5061\npolicy.2=in sips:*@lab HARDENED"
                + " reject\npolicy.1=default MEASURED reject\nmedia.tone.hz=1000\n"));
        assertEquals("alice", c.host(), "the host defaults to the user");
        assertEquals(5061, c.tlsPort());
        assertEquals(0, c.udpPort());
        assertEquals("default MEASURED reject", c.policyLines().get(0), "policy lines in key order");
        assertEquals(1000.0, c.toneHz());
        assertEquals(io.tpmphone.softphone.sip.SipPhone.MediaMode.AUTO, c.mediaMode(), "media keyed by auto");
        assertEquals(io.tpmphone.softphone.sip.SipPhone.MediaMode.DTLS_SRTP, PhoneConfig.of(props(
                "sip.user=alice\nsip.tls.port=5061\npolicy.1=default MEASURED reject\nmedia.mode=dtls-srtp\n"))
                .mediaMode());
        assertEquals(io.tpmphone.softphone.sip.SipPhone.Limits.DEFAULTS.endedHistory(), c.callHistory(),
                "the phone's bound on ended calls kept by default");
        assertEquals(8, PhoneConfig.of(props("sip.user=alice\nsip.tls.port=5061\npolicy.1=default MEASURED reject\n"
                + "sip.calls.history=8\n")).callHistory(), "a soak's smaller bound");
    }

    @Test
    void realAudio_offersOpusFirst_andNamesItsDevices() throws Exception {
        String base = "sip.user=alice\nsip.tls.port=5061\npolicy.1=default MEASURED reject\n";
        PhoneConfig tone = PhoneConfig.of(props(base));
        assertEquals("tone", tone.audio().kind(), "the tone device is the default");
        assertEquals(java.util.List.of(0, 8), tone.audio().payloadTypes(), "PCMU and PCMA with the tone device");
        PhoneConfig real = PhoneConfig.of(props(base + "media.audio=pulseaudio\nmedia.microphone=alsa_input.usb-1\n"
                + "media.speaker=alsa_output.usb-1\n"));
        assertTrue(real.audio().soundServer());
        assertEquals(java.util.List.of(111, 0, 8), real.audio().payloadTypes(), "Opus before PCMU and PCMA");
        assertEquals(java.util.Optional.of("alsa_input.usb-1"), real.audio().microphone());
        assertEquals(java.util.Optional.of("alsa_output.usb-1"), real.audio().speaker());
        assertEquals(java.util.Optional.empty(), real.audio().server(), "the agent's per-call socket by default");
        PhoneConfig pcmu = PhoneConfig.of(props(base + "media.audio=pulseaudio\nmedia.codecs=pcmu\n"));
        assertEquals(java.util.List.of(0), pcmu.audio().payloadTypes(), "only what media.codecs names");
        assertTrue(tone.autoAnswer(), "the tone device (tests, the demo) answers by itself");
        assertTrue(!real.autoAnswer(), "real audio rings: a person answers");
        assertTrue(PhoneConfig.of(props(base + "media.audio=pulseaudio\nphone.answer=auto\n")).autoAnswer(),
                "auto-answer is an explicit choice");
    }

    @Test
    void mistakesAreNamed() {
        String base = "sip.user=alice\nsip.tls.port=5061\npolicy.1=default MEASURED reject\n";
        for (String[] bad : new String[][] {
                {base + "sip.tsl.port=1\n", "unknown configuration key sip.tsl.port"},
                {"sip.tls.port=5061\npolicy.1=default MEASURED reject\n", "sip.user is required"},
                {"sip.user=alice\npolicy.1=default MEASURED reject\n", "sip.tls.port is required"},
                {"sip.user=alice\nsip.tls.port=5061\n", "no call policy"},
                {base + "policy.x=default FAILED reject\n", "policy keys are policy.1"},
                {"sip.user=alice\nsip.tls.port=5061\npolicy.1=default MEASURD reject\n",
                        "policy.1=default MEASURD reject: unknown level"},
                {base + "policy.7=any sip:*@x MEASURD accept\npolicy.3=in sips:*@lab HARDENED reject\n",
                        "policy.7=any sip:*@x MEASURD accept: unknown level"},
                {base + "policy.2=in sips:*@lab HARDENED reject\\n  default FAILED reject\n",
                        "policy.2: one rule per key"},
                {base + "control.socket=/tmp/c.sock\n", "control.socket=/tmp/c.sock: the agent places the control"
                        + " socket itself"},
                {base + "policy.7=in sip:*@x FAILED restrict\n", "policy.7=in sip:*@x FAILED restrict: no peer is"
                        + " below FAILED"},
                {base + "sip.udp.port=70000\n", "sip.udp.port must be 0..65535"},
                {base + "media.tone.hz=loud\n", "media.tone.hz is not a number"},
                {base + "sip.calls.history=0\n", "sip.calls.history must be 1..1000"},
                {base + "sip.calls.history=1001\n", "sip.calls.history must be 1..1000"},
                {base + "sip.calls.history=many\n", "sip.calls.history is not a number"},
                {base + "media.mode=zrtp\n", "media.mode must be auto, dtls-srtp or sdes"},
                {base + "policy.2=any sip:*@x UNATTESTED reject end-to-end MEASURD\n",
                        "policy.2=any sip:*@x UNATTESTED reject end-to-end MEASURD: unknown level"},
                {base + "media.audio=alsa\n", "media.audio must be tone or pulseaudio"},
                {base + "phone.answer=maybe\n", "phone.answer must be ring"},
                {base + "media.speaker=spk\n", "need media.audio=pulseaudio"},
                {base + "media.audio=pulseaudio\nmedia.codecs=opus,g729\n", "unknown codec \"g729\""},
                {base + "media.audio=pulseaudio\nmedia.codecs=pcmu,PCMU\n", "names PCMU twice"},
                {base + "media.codecs=opus,pcmu\n", "opus needs media.audio=pulseaudio"},
                {base + "media.audio=pulseaudio\nmedia.speaker=spk;rm\n", "media.speaker must be a sound server"},
                {base + "media.audio=pulseaudio\nmedia.server=tcp:192.0.2.1\n", "media.server must be unix:/PATH"},
                {"sip.user=al ice\nsip.tls.port=5061\npolicy.1=default MEASURED reject\n", "sip.user must be"}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> PhoneConfig.of(props(bad[0])), bad[1]);
            assertTrue(e.getMessage().contains(bad[1]), e.getMessage() + " should say " + bad[1]);
        }
    }
}
