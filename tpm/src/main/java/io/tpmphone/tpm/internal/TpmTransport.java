package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import io.tpmphone.tpm.TpmUri;

/**
 * Carries one TPM command frame to the TPM and returns its response frame. Not thread-safe: the client serializes.
 * After a failure the transport has dropped its connection; the next {@link #transmit} reconnects.
 */
public interface TpmTransport extends AutoCloseable {

    /** Largest response frame we accept (TPM 2.0 buffers are 4 KiB on every TPM we know; leave room). */
    int MAX_FRAME = 64 * 1024;
    /** tag (2) + size (4) + code (4). */
    int HEADER = 10;

    byte[] transmit(byte[] command) throws TpmTransportException;

    /** Drops the connection (if any); the next {@link #transmit} reconnects. */
    void disconnect();

    /** Drops the connection and releases every resource; the transport cannot be used afterwards. */
    @Override
    void close();

    static TpmTransport open(TpmUri uri) {
        switch (uri.kind()) {
            case SWTPM:
                return new SwtpmSocketTransport(uri.host().orElseThrow(), uri.port(), uri.timeout());
            case SWTPM_SOCKET:
                return new SwtpmUnixSocketTransport(uri.socketPath().orElseThrow(), uri.timeout());
            case DEVICE:
                return new DeviceTransport(uri.devicePath().orElseThrow(), uri.timeout());
            default:
                throw new IllegalArgumentException("unsupported TPM URI kind " + uri.kind());
        }
    }

    /** The size field of a response header, checked against the frame limits. */
    static int frameSize(byte[] header, String where) throws TpmTransportException {
        int size = ((header[2] & 0xff) << 24) | ((header[3] & 0xff) << 16) | ((header[4] & 0xff) << 8)
                | (header[5] & 0xff);
        if (size < HEADER || size > MAX_FRAME) {
            throw new TpmTransportException("malformed TPM response from " + where + ": frame size " + size
                    + " outside " + HEADER + ".." + MAX_FRAME);
        }
        return size;
    }
}
