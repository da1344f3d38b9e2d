package io.tpmphone.softphone.media;

import javax.media.Renderer;
import javax.media.protocol.CaptureDevice;
import org.jitsi.impl.neomedia.device.AudioMediaDeviceImpl;
import org.jitsi.impl.neomedia.device.MediaDeviceSession;
import org.jitsi.service.neomedia.MediaDirection;

/**
 * libjitsi's view of a call's audio device at the codec's rate: capture from a {@link PcmCaptureDevice.FrameSource}
 * (a tone, or the sound server's microphone), playback to a {@link PcmSink} (which keeps what arrives and, with a
 * sound server, plays it).
 */
final class HeadlessAudioDevice extends AudioMediaDeviceImpl {
    private final PcmCaptureDevice.FrameSource source;
    private final int rate;
    private final PcmSink sink;

    HeadlessAudioDevice(PcmCaptureDevice.FrameSource source, int rate, PcmSink sink) {
        this.source = source;
        this.rate = rate;
        this.sink = sink;
    }

    @Override
    protected CaptureDevice createCaptureDevice() {
        return new PcmCaptureDevice(source, rate);
    }

    @Override
    public MediaDirection getDirection() {
        return MediaDirection.SENDRECV;
    }

    @Override
    protected Renderer createRenderer() {
        return sink;
    }

    /** libjitsi's audio session, with the capture processor set up before it is realized (see the class). */
    @Override
    public MediaDeviceSession createSession() {
        return new ConfiguredProcessorSession(this);
    }

    PcmSink sink() {
        return sink;
    }
}
