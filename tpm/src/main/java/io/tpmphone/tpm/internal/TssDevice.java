package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import java.util.Arrays;

/**
 * Adapts one of our transports to TSS.Java's device interface and remembers the last raw response, from which the
 * client takes byte-exact output structures (a re-marshalled TSS.Java object is not guaranteed to equal what the TPM
 * signed). Transport failures cross TSS.Java as the unchecked {@link Failure} and are unwrapped by the client.
 * Never sends platform signals (power, physical presence, locality). Not thread-safe.
 */
public final class TssDevice extends tss.TpmDevice {

    /** Carries a transport failure through TSS.Java, which only lets unchecked exceptions pass. */
    public static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(TpmTransportException cause) {
            super(cause.getMessage(), cause);
        }

        public TpmTransportException transportException() {
            return (TpmTransportException) getCause();
        }
    }

    private final TpmTransport transport;
    private byte[] lastResponse;

    public TssDevice(TpmTransport transport) {
        this.transport = transport;
    }

    @Override
    public boolean connect() {
        return true;
    }

    @Override
    public void dispatchCommand(byte[] command) {
        lastResponse = null;
        try {
            lastResponse = transport.transmit(command);
        } catch (TpmTransportException e) {
            throw new Failure(e);
        }
    }

    @Override
    public boolean responseReady() {
        return lastResponse != null;
    }

    @Override
    public byte[] getResponse() {
        return lastResponse;
    }

    /** The last response frame, or null if the last command did not complete. */
    public byte[] lastResponse() {
        return lastResponse == null ? null : Arrays.copyOf(lastResponse, lastResponse.length);
    }

    /** The raw response code of the last response (0 when none arrived). */
    public int lastRawResponseCode() {
        byte[] r = lastResponse;
        if (r == null || r.length < TpmTransport.HEADER) {
            return 0;
        }
        return ((r[6] & 0xff) << 24) | ((r[7] & 0xff) << 16) | ((r[8] & 0xff) << 8) | (r[9] & 0xff);
    }

    /** Zero-fills the last response frame (it may hold unsealed plaintext). */
    public void wipeLastResponse() {
        byte[] r = lastResponse;
        if (r != null) {
            Arrays.fill(r, (byte) 0);
        }
        lastResponse = null;
    }

    /** Drops the connection, keeping the transport usable. */
    public void disconnect() {
        transport.disconnect();
    }

    @Override
    public void close() {
        transport.close();
    }
}
