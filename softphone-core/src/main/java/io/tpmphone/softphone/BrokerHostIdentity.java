package io.tpmphone.softphone;

import io.tpmphone.tls.AttestationRequest;
import io.tpmphone.tls.Evidence;
import io.tpmphone.tls.HostIdentity;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The measured softphone's TLS identity, all of it from the agent broker: the device certificate chain
 * ({@code CERTS}), CertificateVerify signatures by the TIK inside the TPM ({@code SIGN}), and evidence — a quote
 * over the binder ({@code QUOTE}) with the host's latest signed result ({@code RESULT}). Thread-safe: requests are
 * serialized on the one broker connection ({@link AgentBroker}).
 */
public final class BrokerHostIdentity implements HostIdentity {
    private final AgentBroker broker;
    private volatile List<X509Certificate> chain;

    public BrokerHostIdentity(AgentBroker broker) {
        this.broker = Objects.requireNonNull(broker, "broker");
    }

    @Override
    public List<X509Certificate> certificateChain() throws IOException {
        List<X509Certificate> c = chain;
        if (c != null && !expired(c)) {
            return c;
        }
        List<byte[]> der = broker.certificates();
        List<X509Certificate> parsed = new ArrayList<>();
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            for (byte[] d : der) {
                parsed.add((X509Certificate) cf.generateCertificate(new ByteArrayInputStream(d)));
            }
        } catch (GeneralSecurityException e) {
            throw new IOException("the agent's device certificate does not parse", e);
        }
        chain = List.copyOf(parsed);
        return chain;
    }

    private static boolean expired(List<X509Certificate> c) {
        try {
            c.get(0).checkValidity();
            return false;
        } catch (GeneralSecurityException e) {
            return true;
        }
    }

    @Override
    public byte[] sign(byte[] sha256Digest) throws IOException {
        return broker.sign(sha256Digest);
    }

    @Override
    public Evidence evidence(byte[] binder) throws IOException {
        Map<String, String> q = broker.quote(binder);
        String passport = broker.passport();
        try {
            Base64.Decoder d = Base64.getDecoder();
            return new Evidence(AttestationRequest.FORMAT_TPM2_PASSPORT, d.decode(q.get("ak")),
                    d.decode(q.get("attest")), d.decode(q.get("signature")), passport);
        } catch (RuntimeException e) {
            throw new IOException("the agent broker's quote is incomplete: " + e.getMessage(), e);
        }
    }
}
