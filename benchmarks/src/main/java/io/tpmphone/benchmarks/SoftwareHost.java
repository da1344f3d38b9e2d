package io.tpmphone.benchmarks;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.MakeCredential;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.NonceRequest;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.SymmetricDefinition;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.tpm.TpmQuote;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Provider;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.time.Instant;
import java.util.Date;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Set;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A host whose TPM is simulated in software, producing exactly the structures a TPM produces, for the fleet
 * benchmark's thousands of hosts (one swtpm process each would not fit on one machine): an ECC P-256 endorsement key
 * with the TCG EK template and a certificate from a benchmark CA ({@link EkCa}); an ECC P-256 attestation key with
 * the attributes the registrar requires of an AK (restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin);
 * {@code TPM2_ActivateCredential} ({@link MakeCredential#activateInSoftware}); nonce requests signed as
 * {@code TPM2_Sign} over a hash ticket signs them; and quotes ({@code TPMS_ATTEST} of type quote, signed ECDSA-SHA256)
 * over the PCR values and event log of a {@link Template} taken from a real swtpm host, with the TPM clock moving on
 * in real time. The server cannot tell it from a TPM by the bytes; what it lacks is a TPM's key protection, which is
 * exactly what a benchmark does not need.
 *
 * <p>One owner thread at a time: its clock and nonce-request times only go forward.
 */
final class SoftwareHost {
    /** The TCG EK template's attributes and policy (PolicySecret(TPM_RH_ENDORSEMENT)). */
    private static final Set<ObjectAttribute> EK_ATTRIBUTES = EnumSet.of(ObjectAttribute.FIXED_TPM,
            ObjectAttribute.FIXED_PARENT, ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.ADMIN_WITH_POLICY,
            ObjectAttribute.RESTRICTED, ObjectAttribute.DECRYPT);
    private static final byte[] EK_POLICY = HexFormat.of().parseHex(
            "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
    /** An AK as {@code TpmClient.createAttestationKey} makes one. */
    private static final Set<ObjectAttribute> AK_ATTRIBUTES = EnumSet.of(ObjectAttribute.FIXED_TPM,
            ObjectAttribute.FIXED_PARENT, ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
            ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT);
    /** Bouncy Castle signs P-256 about ten times faster than SunEC on Java 17 (docs/decisions/0007). */
    private static final Provider BC = new BouncyCastleProvider();
    /** One ECDSA signer per thread, initialised with each host's AK before use. */
    private static final ThreadLocal<Signature> SIGNERS = ThreadLocal.withInitial(() -> {
        try {
            return Signature.getInstance("SHA256withECDSA", BC);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("Bouncy Castle lacks SHA256withECDSA", e);
        }
    });

    /**
     * What every software host reports, taken from one real swtpm host after its measured launch: the PCR values of
     * the policy's selection, the event log that replays to them, and the TPM's clock (boot counters, firmware).
     * Immutable.
     */
    record Template(PcrValues pcrValues, MeasurementLog log, ClockInfo clock, long firmwareVersion) {
        Template {
            Objects.requireNonNull(pcrValues, "pcrValues");
            Objects.requireNonNull(log, "log");
            Objects.requireNonNull(clock, "clock");
        }

        /** From a real quote over the policy's selection and that host's log. */
        static Template of(TpmQuote quote, MeasurementLog log) throws GeneralSecurityException {
            try {
                TpmsAttest a = TpmsAttest.parse(quote.attest());
                return new Template(quote.pcrValues(), log, a.clockInfo(), a.firmwareVersion());
            } catch (io.tpmphone.attestation.MalformedStructureException e) {
                throw new GeneralSecurityException("the template quote does not parse: " + e.getMessage(), e);
            }
        }
    }

    /** The benchmark's EK CA: a self-signed ECDSA P-256 root that issues every software host's EK certificate. */
    static final class EkCa {
        private final KeyPair key;
        private final java.security.cert.X509Certificate certificate;
        private final X500Name name = new X500Name("CN=tpmphone fleet benchmark EK CA");
        private final java.util.concurrent.atomic.AtomicLong serial = new java.util.concurrent.atomic.AtomicLong(1);

        EkCa() throws GeneralSecurityException {
            key = p256();
            try {
                Instant now = Instant.now();
                JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(name, BigInteger.ONE,
                        Date.from(now.minusSeconds(3600)), Date.from(now.plusSeconds(30L * 24 * 3600)), name,
                        key.getPublic());
                b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
                b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
                certificate = new JcaX509CertificateConverter().getCertificate(b.build(
                        new JcaContentSignerBuilder("SHA256withECDSA").setProvider(BC).build(key.getPrivate())));
            } catch (org.bouncycastle.operator.OperatorCreationException | java.io.IOException e) {
                throw new GeneralSecurityException("cannot make the benchmark EK CA: " + e.getMessage(), e);
            }
        }

        java.security.cert.X509Certificate certificate() {
            return certificate;
        }

        /** An EK certificate as the TCG EK credential profile has it: keyAgreement (an ECC EK) and tcg-kp-EKCertificate. */
        byte[] issue(java.security.PublicKey ek) throws GeneralSecurityException {
            try {
                Instant now = Instant.now();
                JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(name,
                        BigInteger.valueOf(serial.incrementAndGet()), Date.from(now.minusSeconds(3600)),
                        Date.from(now.plusSeconds(30L * 24 * 3600)), new X500Name(new org.bouncycastle.asn1.x500
                        .RDN[0]), ek);
                b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyAgreement));
                b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.getInstance(
                        new org.bouncycastle.asn1.ASN1ObjectIdentifier("2.23.133.8.1"))));
                b.addExtension(Extension.subjectAlternativeName, true, new org.bouncycastle.asn1.x509.GeneralNames(
                        new org.bouncycastle.asn1.x509.GeneralName(new X500Name("CN=tpmphone software TPM"))));
                return b.build(new JcaContentSignerBuilder("SHA256withECDSA").setProvider(BC).build(
                        key.getPrivate())).getEncoded();
            } catch (org.bouncycastle.operator.OperatorCreationException | java.io.IOException e) {
                throw new GeneralSecurityException("cannot issue an EK certificate: " + e.getMessage(), e);
            }
        }
    }

    private final String name;
    private final KeyPair ek;
    private final TpmtPublic ekPublic;
    private final byte[] ekCertificate;
    private final KeyPair ak;
    private final TpmtPublic akPublic;
    private final Template template;
    private final long clockOrigin = System.nanoTime();
    private long lastRequestedAt;
    private String akId;

    private SoftwareHost(String name, KeyPair ek, TpmtPublic ekPublic, byte[] ekCertificate, KeyPair ak,
                         TpmtPublic akPublic, Template template) {
        this.name = name;
        this.ek = ek;
        this.ekPublic = ekPublic;
        this.ekCertificate = ekCertificate;
        this.ak = ak;
        this.akPublic = akPublic;
        this.template = template;
    }

    /** A new host: fresh EK (certified by {@code ca}) and AK. */
    static SoftwareHost create(String name, EkCa ca, Template template) throws GeneralSecurityException {
        KeyPair ek = p256();
        TpmtPublic ekPublic = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256).attributes(EK_ATTRIBUTES)
                .authPolicy(EK_POLICY).symmetric(SymmetricDefinition.AES_128_CFB).publicKey(ek.getPublic()).build();
        KeyPair ak = p256();
        TpmtPublic akPublic = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256).attributes(AK_ATTRIBUTES)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(ak.getPublic()).build();
        return new SoftwareHost(name, ek, ekPublic, ca.issue(ek.getPublic()), ak, akPublic, template);
    }

    String name() {
        return name;
    }

    TpmtPublic ekPublic() {
        return ekPublic;
    }

    byte[] ekCertificate() {
        return ekCertificate.clone();
    }

    TpmtPublic akPublic() {
        return akPublic;
    }

    /** The AK id the server gave at enrollment (null before). */
    String akId() {
        return akId;
    }

    void enrolled(String id) {
        akId = Objects.requireNonNull(id, "id");
    }

    MeasurementLog log() {
        return template.log();
    }

    /** TPM2_ActivateCredential with the EK and the AK's name. */
    byte[] activate(CredentialBlob challenge) throws GeneralSecurityException {
        return MakeCredential.activateInSoftware(challenge, ekPublic, ek.getPrivate(), akPublic.name());
    }

    /**
     * A nonce request signed by the AK, as {@code TpmClient.signWithRestrictedKey} returns it (a {@code TPMT_SIGNATURE}
     * of ECDSA-SHA256 over the request's encoding), at {@code now} or just after the last one.
     */
    NonceRequest nonceRequest(long nowMillis) {
        lastRequestedAt = Math.max(nowMillis, lastRequestedAt + 1);
        return new NonceRequest(akId, lastRequestedAt);
    }

    byte[] sign(byte[] message) throws GeneralSecurityException {
        Signature s = SIGNERS.get(); // a provider look-up per signature showed in the load generator's profile
        s.initSign(ak.getPrivate());
        s.update(message);
        return TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, s.sign(), EccCurve.NIST_P256).encoded();
    }

    /**
     * {@code TPM2_Quote} by the AK over {@code selection} (the template's) with {@code nonce} as qualifying data; the
     * clock is the template's plus the time since this host was made.
     *
     * @throws IllegalArgumentException if {@code selection} is not the template's
     */
    TpmQuote quote(PcrSelection selection, byte[] nonce) throws GeneralSecurityException {
        if (!selection.equals(template.pcrValues().selection())) {
            throw new IllegalArgumentException("the server asks for PCRs " + selection + "; the template has "
                    + template.pcrValues().selection());
        }
        ClockInfo c = template.clock();
        ClockInfo now = new ClockInfo(c.clock() + (System.nanoTime() - clockOrigin) / 1_000_000, c.resetCount(),
                c.restartCount(), c.safe());
        byte[] attest = TpmsAttest.encodeQuote(akPublic.name(), nonce, now, template.firmwareVersion(), selection,
                template.pcrValues().compositeDigest(HashAlgorithm.SHA256));
        return new TpmQuote(attest, sign(attest), template.pcrValues());
    }

    private static KeyPair p256() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC", BC);
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }
}
