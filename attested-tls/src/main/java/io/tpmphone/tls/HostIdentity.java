package io.tpmphone.tls;

import java.io.IOException;
import java.security.cert.X509Certificate;
import java.util.List;

/**
 * What this side of an attested handshake presents: its device certificate chain (the TLS identity key's certificate
 * from the attestation server's device CA, then that CA), CertificateVerify signatures made by the TIK inside the TPM,
 * and evidence bound to a binder. In the softphone these come from the agent broker. Implementations must be
 * thread-safe; every call may block on the TPM.
 */
public interface HostIdentity {
    /** The device certificate first, then its issuer(s). */
    List<X509Certificate> certificateChain() throws IOException;

    /** ECDSA P-256 signature (DER) of a SHA-256 digest by the TIK. */
    byte[] sign(byte[] sha256Digest) throws IOException;

    /** A fresh quote over {@code binder} with the AK, and the host's current passport. */
    Evidence evidence(byte[] binder) throws IOException;
}
