package io.tpmphone.tls;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSObject;
import com.nimbusds.jose.crypto.ECDSAVerifier;
import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.attestation.VerificationException;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPublicKey;
import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;

/**
 * Verifies a peer's evidence locally, without a server round trip (the passport model of DESIGN §3). In order, the
 * first failure ends the verification with a {@link PassportException} that names it
 * ({@link PassportException.Check}):
 * <ol>
 *   <li>CERTIFICATE — the peer's end-entity certificate is issued by a trusted device CA and valid now; its CN is the
 *       host;</li>
 *   <li>PASSPORT, ALGORITHM, SIGNATURE — the attestation result is a compact JWS, signed ES256 by the trusted result
 *       key;</li>
 *   <li>RESULT — its payload is a version-1 {@link AttestationResult} (strictly decoded: another version, an unknown,
 *       missing or mistyped member is refused);</li>
 *   <li>EXPIRED, NOT_YET_VALID — it is unexpired and not issued in the future (30 s tolerated);</li>
 *   <li>HOST — it is for the host the certificate names;</li>
 *   <li>AK — the evidence's AK public area parses and its TPM name is the result's {@code akId};</li>
 *   <li>QUOTE — the quote is the AK's (signature), a TPM-generated quote whose qualifying data is this handshake's
 *       binder, and whose PCR digest is the one the server appraised ({@code pcrDigest}).</li>
 * </ol>
 * The level is then the result's level. The binder covers both randoms and the TIK's SPKI, and the TLS stack checks the
 * CertificateVerify by that TIK: evidence relayed from another handshake or made for another key fails at QUOTE.
 * Thread-safe.
 */
public final class PassportVerifier {
    /** Tolerated clock difference for a result's issue time. */
    static final Duration SKEW = Duration.ofSeconds(30);

    private final ECPublicKey resultKey;
    private final List<X509Certificate> deviceCas;
    private final Clock clock;

    public PassportVerifier(PublicKey resultKey, List<X509Certificate> deviceCas, Clock clock) {
        if (!(Objects.requireNonNull(resultKey, "resultKey") instanceof ECPublicKey ec)) {
            throw new IllegalArgumentException("the result-signing key is an EC P-256 key");
        }
        this.resultKey = ec;
        this.deviceCas = List.copyOf(deviceCas);
        this.clock = Objects.requireNonNull(clock, "clock");
        if (this.deviceCas.isEmpty()) {
            throw new IllegalArgumentException("at least one trusted device CA");
        }
    }

    /** The host name of a device certificate issued by a trusted device CA, if it is one. */
    public Optional<String> deviceHost(List<X509Certificate> chain) {
        if (chain.isEmpty()) {
            return Optional.empty();
        }
        try {
            return Optional.of(trustedHost(chain.get(0), clock.instant()));
        } catch (PassportException e) {
            return Optional.empty();
        }
    }

    /**
     * Verifies {@code evidence} from a peer that presented {@code chain} in a handshake whose expected binder (for
     * the peer's evidence) is {@code binder}.
     *
     * @throws PassportException naming the first check that failed (see the class documentation)
     */
    public VerifiedPassport verify(List<X509Certificate> chain, Evidence evidence, byte[] binder)
            throws PassportException {
        Objects.requireNonNull(chain, "chain");
        Objects.requireNonNull(evidence, "evidence");
        Objects.requireNonNull(binder, "binder");
        Instant now = clock.instant();
        if (chain.isEmpty()) {
            throw new PassportException(PassportException.Check.CERTIFICATE, "evidence without a certificate");
        }
        String host = trustedHost(chain.get(0), now);
        AttestationResult result = signedResult(evidence.passport());
        if (!now.isBefore(result.expiresAt())) {
            throw new PassportException(PassportException.Check.EXPIRED, "the result expired at "
                    + result.expiresAt() + " (now " + now + "): the peer's agent renews it every attestation");
        }
        if (result.issuedAt().isAfter(now.plus(SKEW))) {
            throw new PassportException(PassportException.Check.NOT_YET_VALID, "the result is issued at "
                    + result.issuedAt() + ", more than " + SKEW.toSeconds() + " s after now (" + now
                    + "): check this host's clock");
        }
        if (!host.equals(result.host())) {
            throw new PassportException(PassportException.Check.HOST, "the result is for host '" + result.host()
                    + "', the device certificate for '" + host + "'");
        }
        TpmtPublic ak;
        try {
            ak = TpmtPublic.parse(evidence.akPublic());
        } catch (MalformedStructureException e) {
            throw new PassportException(PassportException.Check.AK, "the AK public area is malformed: "
                    + e.getMessage(), e);
        }
        String akId = HexFormat.of().formatHex(ak.name());
        if (!akId.equals(result.akId())) {
            throw new PassportException(PassportException.Check.AK, "the quoting AK " + abbreviate(akId)
                    + " is not the AK " + abbreviate(result.akId()) + " the result names");
        }
        try {
            QuoteVerifier.verifyDigest(evidence.quote(), evidence.signature(), ak, binder, result.pcrDigest());
        } catch (VerificationException e) {
            throw new PassportException(PassportException.Check.QUOTE, e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new PassportException(PassportException.Check.QUOTE, e.getMessage(), e);
        }
        return new VerifiedPassport(host, result, ak, now);
    }

    /**
     * The peer's attestation for the TLS layer: {@link #verify}'s level with a summary for the user, or
     * {@link IntegrityLevel#FAILED} naming the check that failed. Never throws for bad evidence.
     */
    public PeerAttestation appraise(List<X509Certificate> chain, Evidence evidence, byte[] binder) {
        try {
            VerifiedPassport v = verify(chain, evidence, binder);
            AttestationResult r = v.result();
            String summary = r.release().map(n -> "release " + UntrustedText.forTerminal(n, 200))
                    .orElse("no approved release") + ", policy v" + r.policyVersion() + ", AK "
                    + abbreviate(r.akId());
            return new PeerAttestation(r.level(), Optional.of(v.host()), summary, Optional.of(r.issuedAt()),
                    v.verifiedAt(), "the attestation server rated it " + r.level()
                    + "; the quote is fresh for this handshake");
        } catch (PassportException e) {
            return PeerAttestation.failed(deviceHost(chain), clock.instant(), e);
        }
    }

    /** The CN of {@code leaf} if it is issued by a trusted device CA, valid at {@code now} and not a CA. */
    private String trustedHost(X509Certificate leaf, Instant now) throws PassportException {
        for (X509Certificate ca : deviceCas) {
            if (!ca.getSubjectX500Principal().equals(leaf.getIssuerX500Principal())) {
                continue;
            }
            try {
                leaf.verify(ca.getPublicKey());
                leaf.checkValidity(java.util.Date.from(now));
                ca.checkValidity(java.util.Date.from(now));
            } catch (GeneralSecurityException e) {
                throw new PassportException(PassportException.Check.CERTIFICATE, "the device certificate does not"
                        + " verify under the trusted device CA: " + e.getMessage(), e);
            }
            if (leaf.getBasicConstraints() != -1) {
                throw new PassportException(PassportException.Check.CERTIFICATE,
                        "the end-entity certificate is a CA certificate");
            }
            return commonName(leaf).orElseThrow(() -> new PassportException(PassportException.Check.CERTIFICATE,
                    "the device certificate has no CN"));
        }
        throw new PassportException(PassportException.Check.CERTIFICATE, "the certificate is not issued by a"
                + " trusted device CA (issuer " + leaf.getIssuerX500Principal() + ")");
    }

    /** PASSPORT, ALGORITHM, SIGNATURE, then RESULT: the signed payload, strictly decoded. */
    private AttestationResult signedResult(String passport) throws PassportException {
        if (passport.isEmpty()) {
            throw new PassportException(PassportException.Check.PASSPORT, "no attestation result attached: the"
                    + " peer's agent has none yet (it needs an appraisal first)");
        }
        JWSObject jws;
        try {
            jws = JWSObject.parse(passport);
        } catch (ParseException e) {
            throw new PassportException(PassportException.Check.PASSPORT, "the result is not a compact JWS: "
                    + e.getMessage(), e);
        }
        if (!JWSAlgorithm.ES256.equals(jws.getHeader().getAlgorithm())) {
            throw new PassportException(PassportException.Check.ALGORITHM, "the result is signed with "
                    + jws.getHeader().getAlgorithm() + ", not ES256");
        }
        try {
            if (!jws.verify(new ECDSAVerifier(resultKey))) {
                throw new PassportException(PassportException.Check.SIGNATURE, "the result's signature is not the"
                        + " trusted attestation server's");
            }
        } catch (JOSEException e) {
            throw new PassportException(PassportException.Check.SIGNATURE, "the result's signature cannot be"
                    + " checked: " + e.getMessage(), e);
        }
        try {
            return AttestationResult.decode(jws.getPayload().toBytes());
        } catch (MalformedStructureException e) {
            throw new PassportException(PassportException.Check.RESULT, "the signed result is not one this verifier"
                    + " reads: " + e.getMessage(), e);
        }
    }

    private static String abbreviate(String hex) {
        return hex.substring(0, Math.min(12, hex.length())) + "\u2026";
    }

    static Optional<String> commonName(X509Certificate cert) {
        try {
            LdapName name = new LdapName(cert.getSubjectX500Principal().getName());
            for (Rdn rdn : name.getRdns()) {
                if (rdn.getType().equalsIgnoreCase("CN")) {
                    return Optional.of(rdn.getValue().toString());
                }
            }
        } catch (InvalidNameException e) {
            return Optional.empty();
        }
        return Optional.empty();
    }
}
