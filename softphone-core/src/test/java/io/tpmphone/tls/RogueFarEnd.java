package io.tpmphone.tls;

import java.io.IOException;

/**
 * A far end that, once its DTLS-SRTP association stands (handshake and evidence exchange done, as a genuine host
 * does them), sends application data no genuine far end sends: what the tests of a live phone throw at its
 * association. Test code only.
 */
public final class RogueFarEnd {
    private RogueFarEnd() {
    }

    /** Sends {@code record} as one DTLS application-data record inside {@code association}. */
    public static void send(DtlsSrtpAssociation association, byte[] record) throws IOException {
        association.transport().send(record, 0, record.length);
    }

    /** The largest application-data record the association's path takes. */
    public static int sendLimit(DtlsSrtpAssociation association) throws IOException {
        return association.transport().getSendLimit();
    }
}
