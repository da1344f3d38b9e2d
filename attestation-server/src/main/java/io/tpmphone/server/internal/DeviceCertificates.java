package io.tpmphone.server.internal;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.CertifyVerifier;
import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.VerificationException;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.Date;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DEROctetString;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.X500NameBuilder;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * The device CA: issues a host's X.509 device-identity certificate for its TPM-resident TLS identity key (TIK) from
 * a Certify-backed request (docs/keystore.md, "TLS identity key"). It checks, in this order: the AK is enrolled
 * (AK_ENROLLED); the nonce is ours, fresh and for this AK (NONCE); {@code TPM2_Certify} by that AK over the nonce
 * names exactly the offered public area (CERTIFY); the key is a TPM-generated, non-duplicable, unrestricted ECC P-256
 * ECDSA-SHA256 signing key that only a policy can use, and that policy is {@code PolicyAuthorize(keystore authority,
 * SHA256("tpmphone-keystore-v1" || this host's EK name))} — so the key signs only in a state this server approved
 * (KEY_POLICY); and the host's latest appraisal is MEASURED or better and not expired (LEVEL). Every outcome is
 * audited: issued certificates and KEY_POLICY and LEVEL refusals one record each, the refusals before the certify
 * signature verified rate-limited per client (docs/audit.md, "Refusals"). Thread-safe.
 */
public final class DeviceCertificates {
    /** How long a device certificate is valid. */
    public static final Duration VALIDITY = Duration.ofDays(30);
    /**
     * A private extension holding the TIK's TPM name (nameAlg || H(TPMT_PUBLIC)), so a relying party can tie TLS
     * evidence (a Certify or the result's claims) to this certificate without parsing TPM structures. Under a
     * UUID-derived arc (X.667 2.25), so it needs no registration.
     */
    public static final ASN1ObjectIdentifier TIK_NAME_OID = new ASN1ObjectIdentifier(
            "2.25.314599016102347099429551459005819449691.1");
    private static final Pattern DNS_NAME = Pattern.compile("(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
            + "(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*");
    private static final int ALLOWED_ATTRIBUTES = ObjectAttribute.FIXED_TPM.mask() | ObjectAttribute.FIXED_PARENT.mask()
            | ObjectAttribute.SENSITIVE_DATA_ORIGIN.mask() | ObjectAttribute.NO_DA.mask()
            | ObjectAttribute.SIGN_ENCRYPT.mask();

    private final Registry registry;
    private final NonceService nonces;
    private final ServerIdentity identity;
    private final KeyApprover approver;
    private volatile RefusalAggregator refusals;
    private final AuditTrail audit;
    private final Clock clock;
    private final Function<String, Optional<Registry.LastAppraisal>> lastAppraisal;

    public DeviceCertificates(Registry registry, NonceService nonces, ServerIdentity identity, KeyApprover approver,
                              AuditTrail audit, Clock clock,
                              Function<String, Optional<Registry.LastAppraisal>> lastAppraisal) {
        this.registry = registry;
        this.nonces = nonces;
        this.identity = identity;
        this.approver = approver;
        this.audit = audit;
        this.clock = clock;
        this.lastAppraisal = lastAppraisal;
    }

    /**
     * Rate-limits the records of refusals before the certify signature verified (anyone can provoke those: AK ids
     * are public) through {@code refusals}, per client source, check and, for an enrolled AK, that AK. Call once,
     * before serving.
     */
    public DeviceCertificates withRefusals(RefusalAggregator refusals) {
        this.refusals = refusals;
        return this;
    }

    /** POST /v1/device-certificates. */
    public Map<String, Object> issue(String body) throws Exception {
        return issue(body, null);
    }

    /** POST /v1/device-certificates from a client at {@code remote} (null: unknown). */
    public Map<String, Object> issue(String body, String remote) throws Exception {
        ObjectNode req = Json.object(body, Set.of("akId", "nonce", "tikPublic", "certifyInfo", "signature"),
                Set.of());
        String akId = Json.text(req, "akId", 200);
        byte[] nonce = Json.hex(req, "nonce", 64);
        byte[] tikBytes = Json.base64(req, "tikPublic", 1024);
        byte[] attest = Json.base64(req, "certifyInfo", 4096);
        byte[] signature = Json.base64(req, "signature", 4096);

        // Nothing is authenticated before the certify signature verifies, and AK ids are public (passports, results):
        // anyone can provoke AK_ENROLLED, NONCE and CERTIFY, so their records are rate-limited per source, check and
        // (if enrolled) AK. Only KEY_POLICY and LEVEL, after the AK signed over our nonce, are one record each.
        Optional<Registry.Host> host = registry.hostByAkId(akId);
        if (host.isEmpty()) {
            throw refuseUnauthenticated(akId, false, "AK_ENROLLED", "AK is not enrolled: enroll the host first",
                    remote);
        }
        NonceService.Consumed consumed = nonces.consume(nonce, akId);
        if (consumed.refusal() != null) {
            throw refuseUnauthenticated(akId, true, "NONCE", "the nonce is " + consumed.refusal().name()
                    .toLowerCase().replace('_', ' ') + "; request a fresh one", remote);
        }
        TpmtPublic tik;
        try {
            tik = TpmtPublic.parse(tikBytes);
            CertifyVerifier.verify(attest, signature, TpmtPublic.parse(host.get().akPublic()), nonce, tik);
        } catch (MalformedStructureException e) {
            throw refuseUnauthenticated(akId, true, "CERTIFY", "malformed: " + e.getMessage(), remote);
        } catch (VerificationException e) {
            throw refuseUnauthenticated(akId, true, "CERTIFY", e.check() + ": " + e.getMessage(), remote);
        }
        String name = host.get().host();
        String keyProblem = keyProblem(tik, host.get().ekName());
        if (keyProblem != null) {
            throw refuse(name, akId, "KEY_POLICY", keyProblem);
        }
        Optional<Registry.LastAppraisal> last = lastAppraisal.apply(name);
        Instant now = clock.instant();
        if (last.isEmpty() || !last.get().level().atLeast(IntegrityLevel.MEASURED)
                || !last.get().expiresAt().isAfter(now)) {
            throw refuse(name, akId, "LEVEL", "the host has no unexpired appraisal at MEASURED or better"
                    + last.map(l -> " (last: " + l.level() + ", expires " + l.expiresAt() + ")").orElse("")
                    + "; attest first");
        }
        X509Certificate cert = certificate(name, tik, now);
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", akId);
        detail.put("tikName", HexFormat.of().formatHex(tik.name()));
        detail.put("serial", cert.getSerialNumber().toString(16));
        detail.put("notAfter", cert.getNotAfter().toInstant().toString());
        audit.record("KEY_RELEASE", name, "DEVICE_CERTIFICATE_ISSUED", detail);

        Map<String, Object> m = new LinkedHashMap<>();
        m.put("host", name);
        m.put("certificate", ServerIdentity.pem(cert));
        m.put("caCertificate", ServerIdentity.pem(identity.deviceCaCertificate()));
        m.put("notAfter", cert.getNotAfter().toInstant().toString());
        return m;
    }

    /** Why {@code tik} may not get a device certificate, or null. */
    String keyProblem(TpmtPublic tik, byte[] ekName) {
        if (tik.type() != KeyType.ECC || tik.curve().orElse(null) != EccCurve.NIST_P256
                || tik.scheme() != SchemeAlgorithm.ECDSA || tik.schemeHash().orElse(null) != HashAlgorithm.SHA256
                || tik.nameAlg() != HashAlgorithm.SHA256) {
            return "the identity key must be ECC P-256 with ECDSA-SHA256 and a SHA-256 name";
        }
        int required = ObjectAttribute.FIXED_TPM.mask() | ObjectAttribute.FIXED_PARENT.mask()
                | ObjectAttribute.SENSITIVE_DATA_ORIGIN.mask() | ObjectAttribute.SIGN_ENCRYPT.mask();
        if ((tik.objectAttributes() & required) != required || (tik.objectAttributes() & ~ALLOWED_ATTRIBUTES) != 0) {
            return "the identity key's attributes " + tik.attributes() + " are not fixedTPM, fixedParent,"
                    + " sensitiveDataOrigin, sign (noDA allowed) without userWithAuth, adminWithPolicy, restricted or"
                    + " decrypt";
        }
        byte[] expected = KeystorePolicy.sealingPolicy(approver.publicArea().name(),
                KeystorePolicy.hostPolicyRef(ekName)).value();
        if (!Arrays.equals(expected, tik.authPolicy())) {
            return "the identity key's policy is not PolicyAuthorize(this server's keystore authority, this host's"
                    + " policyRef): it could sign outside a state approved for this host";
        }
        return null;
    }

    private X509Certificate certificate(String host, TpmtPublic tik, Instant now)
            throws GeneralSecurityException, InvalidKeyException {
        X509Certificate ca = identity.deviceCaCertificate();
        X500Name subject = new X500NameBuilder(BCStyle.INSTANCE).addRDN(BCStyle.O, "tpmphone device")
                .addRDN(BCStyle.CN, host).build();
        SubjectPublicKeyInfo spki = SubjectPublicKeyInfo.getInstance(tik.subjectPublicKeyInfo());
        X509v3CertificateBuilder b = new X509v3CertificateBuilder(
                X500Name.getInstance(ca.getSubjectX500Principal().getEncoded()),
                new BigInteger(127, new SecureRandom()), Date.from(now.minus(Duration.ofMinutes(5))),
                Date.from(now.plus(VALIDITY)), subject, spki);
        try {
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
            b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(
                    new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}));
            b.addExtension(Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(ca));
            b.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(spki));
            if (DNS_NAME.matcher(host).matches()) {
                b.addExtension(Extension.subjectAlternativeName, false,
                        new GeneralNames(new GeneralName(GeneralName.dNSName, host)));
            }
            b.addExtension(TIK_NAME_OID, false, new DEROctetString(tik.name()));
            return new JcaX509CertificateConverter().getCertificate(
                    b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(identity.deviceCaKey())));
        } catch (java.io.IOException | OperatorCreationException e) {
            throw new GeneralSecurityException("cannot build the device certificate: " + e.getMessage(), e);
        }
    }

    /**
     * A refusal before the certify signature verified. From a client at {@code remote}, through the refusal
     * aggregator: the first of its key (outcome, source, check and, for an enrolled AK, the AK) in a window is recorded
     * in full, the rest are counted (docs/audit.md). Without an address or an aggregator (in-process callers), one
     * record each.
     */
    private ApiException refuseUnauthenticated(String akId, boolean enrolled, String check, String reason,
                                               String remote) throws ApiException {
        String ak = abbreviate(akId);
        RefusalAggregator aggregator = refusals;
        if (remote == null || aggregator == null) {
            return refuse("ak:" + ak, akId, check, reason);
        }
        String keyed = enrolled ? "ak:" + ak : "ak:(unenrolled)";
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", ak);
        detail.put("check", check);
        detail.put("detail", reason); // "reason" is the aggregation key's
        detail.put("remote", remote);
        aggregator.refuse("DEVICE_CERTIFICATE_REFUSED", remote, enrolled ? check + " " + keyed : check, detail,
                "ak:" + ak, keyed);
        return new ApiException(403, "certificate_refused", check, reason);
    }

    private static String abbreviate(String akId) {
        return akId.length() > 20 ? akId.substring(0, 20) + "…" : akId;
    }

    /** A refusal after the AK signed over our nonce (KEY_POLICY, LEVEL): one record each. */
    private ApiException refuse(String subject, String akId, String check, String reason) throws ApiException {
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", akId);
        detail.put("check", check);
        detail.put("reason", reason);
        audit.record("REFUSAL", subject, "DEVICE_CERTIFICATE_REFUSED", detail);
        return new ApiException(403, "certificate_refused", check, reason);
    }
}
