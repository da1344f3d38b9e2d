package io.tpmphone.tls;

import org.bouncycastle.tls.TlsFatalAlert;

/** A fatal alert this side raises on purpose in a DTLS-SRTP handshake, with the typed reason behind it. */
final class DtlsRefusal extends TlsFatalAlert {
    private static final long serialVersionUID = 1L;
    final transient DtlsSrtpException.Reason reason;

    DtlsRefusal(short alert, DtlsSrtpException.Reason reason, String message) {
        super(alert, message);
        this.reason = reason;
    }
}
