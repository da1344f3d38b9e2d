package io.tpmphone.softphone.media;

import javax.media.Renderer;
import javax.media.protocol.CaptureDevice;
import org.jitsi.impl.neomedia.device.AudioMediaDeviceImpl;
import org.jitsi.service.neomedia.MediaDirection;

/** An audio device with no hardware: capture plays PCM samples in a loop, playback goes to a {@link PcmSink}. */
final class HeadlessAudioDevice extends AudioMediaDeviceImpl {
    private final short[] source;
    private final PcmSink sink = new PcmSink();

    HeadlessAudioDevice(short[] source) {
        this.source = source.clone();
    }

    @Override
    protected CaptureDevice createCaptureDevice() {
        return new PcmCaptureDevice(source);
    }

    @Override
    public MediaDirection getDirection() {
        return MediaDirection.SENDRECV;
    }

    @Override
    protected Renderer createRenderer() {
        return sink;
    }

    PcmSink sink() {
        return sink;
    }
}
