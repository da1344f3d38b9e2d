package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import tss.TpmDeviceTcp;

/**
 * TSS.Java's own {@code TpmDeviceTcp} behind our transport interface — for {@code TpmClient.openOverStockTcpDevice}
 * only (the TPM benchmark in benchmarks), so that the same command sequences run over both devices. It opens the control port (P+1) as well, without sending anything there.
 */
public final class StockTcpTransport implements TpmTransport {
    private final String host;
    private final int port;
    private TpmDeviceTcp device;

    public StockTcpTransport(String host, int port) {
        this.host = host;
        this.port = port;
    }

    @Override
    public byte[] transmit(byte[] command) throws TpmTransportException {
        try {
            if (device == null) {
                TpmDeviceTcp d = new TpmDeviceTcp(host, port);
                if (!d.connect()) {
                    throw new TpmTransportException("TSS.Java TpmDeviceTcp could not connect to " + host + ":" + port);
                }
                device = d;
            }
            device.dispatchCommand(command);
            return device.getResponse();
        } catch (RuntimeException e) {
            disconnect();
            throw new TpmTransportException("TSS.Java TpmDeviceTcp failed: " + e, e);
        }
    }

    @Override
    public void disconnect() {
        TpmDeviceTcp d = device;
        device = null;
        if (d != null) {
            try {
                d.close();
            } catch (RuntimeException e) {
                // closing a broken stock device can throw; nothing to recover
            }
        }
    }

    @Override
    public void close() {
        disconnect();
    }

}
