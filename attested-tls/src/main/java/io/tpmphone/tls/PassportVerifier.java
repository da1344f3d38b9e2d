package io.tpmphone.tls;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.crypto.ECDSAVerifier;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmtPublic;
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
 * first failure making the peer {@code FAILED} with the check named:
 * <ol>
 *   <li>CERTIFICATE — the peer's end-entity certificate is issued by a trusted device CA and valid now; its CN is the
 *       host;</li>
 *   <li>PASSPORT — the attestation result is an ES256 JWS by the trusted result key, unexpired, issued not in the
 *       future, for that host;</li>
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
        return checkCertificate(chain.get(0)) == null ? commonName(chain.get(0)) : Optional.empty();
    }

    /**
     * Verifies {@code evidence} from a peer that presented {@code chain} in a handshake whose expected binder (for
     * the peer's evidence) is {@code binder}.
     */
    public PeerAttestation verify(List<X509Certificate> chain, Evidence evidence, byte[] binder) {
        Instant now = clock.instant();
        if (chain.isEmpty()) {
            return PeerAttestation.failed(Optional.empty(), now, "CERTIFICATE", "evidence without a certificate");
        }
        X509Certificate leaf = chain.get(0);
        String certProblem = checkCertificate(leaf);
        Optional<String> cn = commonName(leaf);
        if (certProblem != null || cn.isEmpty()) {
            return PeerAttestation.failed(Optional.empty(), now, "CERTIFICATE",
                    certProblem != null ? certProblem : "the device certificate has no CN");
        }
        String host = cn.get();
        JWTClaimsSet claims;
        try {
            SignedJWT jwt = SignedJWT.parse(evidence.passport());
            if (!JWSAlgorithm.ES256.equals(jwt.getHeader().getAlgorithm())) {
                return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", "the result is signed with "
                        + jwt.getHeader().getAlgorithm() + ", not ES256");
            }
            if (!jwt.verify(new ECDSAVerifier(resultKey))) {
                return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", "the result's signature is not the"
                        + " trusted attestation server's");
            }
            claims = jwt.getJWTClaimsSet();
        } catch (ParseException | JOSEException e) {
            return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", evidence.passport().isEmpty()
                    ? "no attestation result attached" : "the result is not a valid JWS: " + e.getMessage());
        }
        Instant iat = claims.getIssueTime() == null ? null : claims.getIssueTime().toInstant();
        Instant exp = claims.getExpirationTime() == null ? null : claims.getExpirationTime().toInstant();
        if (iat == null || exp == null || !exp.isAfter(now) || iat.isAfter(now.plus(SKEW))) {
            return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", "the result is expired or not yet"
                    + " valid (issued " + iat + ", expires " + exp + ", now " + now + ")");
        }
        if (!host.equals(claims.getSubject())) {
            return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", "the result is for host '"
                    + claims.getSubject() + "', the certificate for '" + host + "'");
        }
        String akId;
        String pcrDigest;
        IntegrityLevel level;
        try {
            akId = claims.getStringClaim("akId");
            pcrDigest = claims.getStringClaim("pcrDigest");
            level = IntegrityLevel.valueOf(claims.getStringClaim("level"));
        } catch (ParseException | IllegalArgumentException | NullPointerException e) {
            return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", "the result lacks akId, pcrDigest or"
                    + " a known level");
        }
        if (akId == null || pcrDigest == null) {
            return PeerAttestation.failed(Optional.of(host), now, "PASSPORT", "the result lacks akId or pcrDigest");
        }
        TpmtPublic ak;
        try {
            ak = TpmtPublic.parse(evidence.akPublic());
        } catch (MalformedStructureException e) {
            return PeerAttestation.failed(Optional.of(host), now, "AK", "the AK public area is malformed: "
                    + e.getMessage());
        }
        if (!HexFormat.of().formatHex(ak.name()).equals(akId)) {
            return PeerAttestation.failed(Optional.of(host), now, "AK", "the quoting AK is not the one the result"
                    + " names");
        }
        try {
            QuoteVerifier.verifyDigest(evidence.quote(), evidence.signature(), ak, binder,
                    HexFormat.of().parseHex(pcrDigest));
        } catch (VerificationException e) {
            return PeerAttestation.failed(Optional.of(host), now, "QUOTE", e.check() + ": " + e.getMessage());
        } catch (IllegalArgumentException e) {
            return PeerAttestation.failed(Optional.of(host), now, "QUOTE", e.getMessage());
        }
        String release = null;
        Long policyVersion = null;
        try {
            release = claims.getStringClaim("release");
            policyVersion = claims.getLongClaim("policyVersion");
        } catch (ParseException e) {
            // optional display fields
        }
        String summary = (release != null ? "release " + release : "no approved release")
                + (policyVersion != null ? ", policy v" + policyVersion : "")
                + ", AK " + akId.substring(0, Math.min(12, akId.length())) + "…";
        return new PeerAttestation(level, Optional.of(host), summary, Optional.of(iat), now,
                "the attestation server rated it " + level + "; the quote is fresh for this handshake");
    }

    /** Null if {@code leaf} is issued by a trusted device CA and valid now, else why not. */
    private String checkCertificate(X509Certificate leaf) {
        Instant now = clock.instant();
        for (X509Certificate ca : deviceCas) {
            if (!ca.getSubjectX500Principal().equals(leaf.getIssuerX500Principal())) {
                continue;
            }
            try {
                leaf.verify(ca.getPublicKey());
                leaf.checkValidity(java.util.Date.from(now));
                ca.checkValidity(java.util.Date.from(now));
                if (leaf.getBasicConstraints() != -1) {
                    return "the end-entity certificate is a CA certificate";
                }
                return null;
            } catch (GeneralSecurityException e) {
                return "the device certificate does not verify under the trusted device CA: " + e.getMessage();
            }
        }
        return "the certificate is not issued by a trusted device CA (issuer " + leaf.getIssuerX500Principal() + ")";
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
