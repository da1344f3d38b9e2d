package io.tpmphone.tls;

import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Optional;
import org.bouncycastle.tls.TlsPeer;

/** One side of one attested connection, after (or during) its handshake. */
public interface AttestedTlsPeer extends TlsPeer {
    /** What this side established about the peer; empty until the peer's Certificate was processed. */
    Optional<PeerAttestation> peer();

    /** The peer's certificate chain as presented, end-entity first; empty if it sent none. */
    List<X509Certificate> peerCertificates();

    /** The negotiated TLS cipher suite code (e.g. 0x1301), or -1 before the handshake completed. */
    int cipherSuite();

    /** The negotiated protocol as JSSE names it ("TLSv1.3", "TLSv1.2"), or "NONE" before it was chosen. */
    default String protocol() {
        return "TLSv1.3";
    }

    /** This side's identity, if it presents one. */
    Optional<HostIdentity> identity();
}
