package io.tpmphone.tls;

import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JWSObject;
import com.nimbusds.jose.Payload;
import com.nimbusds.jose.crypto.ECDSASigner;
import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.Claim;
import io.tpmphone.attestation.ClaimName;
import io.tpmphone.attestation.ClaimStatus;
import io.tpmphone.attestation.ClaimVector;
import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import java.io.IOException;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECGenParameterSpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Hosts made in software the way the TPM and the attestation server make them: a device CA, a result-signing key,
 * and per host a TIK with its device certificate, an AK (restricted ECC, as a TPM's) that signs TPMS_ATTEST quotes,
 * and a passport (an ES256 JWS of an {@link AttestationResult}) at a chosen level. For protocol tests that need no
 * TPM; the TPM's own formats are covered against swtpm elsewhere.
 */
final class SoftwareHosts {
    private static final SecureRandom RANDOM = new SecureRandom();
    static final PcrSelection PCRS = PcrSelection.parse("sha256:0-7,14");
    static final byte[] PCR_DIGEST = HashAlgorithm.SHA256.digest(new byte[] {1, 2, 3});

    private final Clock clock;
    private final KeyPair deviceCa;
    private final X509Certificate deviceCaCert;
    private final KeyPair resultKey;

    SoftwareHosts(Clock clock) throws Exception {
        this.clock = clock;
        this.deviceCa = ec();
        this.deviceCaCert = certificate("tpmphone device CA", deviceCa.getPublic(), deviceCa, null, true,
                clock.instant());
        this.resultKey = ec();
    }

    PassportVerifier verifier() {
        return new PassportVerifier(resultKey.getPublic(), List.of(deviceCaCert), clock);
    }

    /** A host with a device certificate from this CA and a passport at {@code level}. */
    Host host(String name, IntegrityLevel level) throws Exception {
        KeyPair tik = ec();
        KeyPair ak = ec();
        TpmtPublic akPublic = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256)
                .attributes(ObjectAttribute.FIXED_TPM, ObjectAttribute.FIXED_PARENT,
                        ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
                        ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(ak.getPublic()).build();
        X509Certificate cert = certificate(name, tik.getPublic(), deviceCa, deviceCaCert, false, clock.instant());
        return new Host(name, tik, cert, ak, akPublic, passport(name, akPublic, level));
    }

    /** A self-signed ECDSA certificate and key, as a standard DTLS-SRTP phone makes for itself. */
    Host selfSigned(String name) throws Exception {
        KeyPair tik = ec();
        X509Certificate cert = certificate(name, tik.getPublic(), tik, null, false, clock.instant());
        return new Host(name, tik, cert, null, null, null);
    }

    private String passport(String name, TpmtPublic ak, IntegrityLevel level) throws Exception {
        ClaimVector claims = ClaimVector.empty()
                .with(ClaimName.INSTANCE_IDENTITY, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.EXECUTABLES, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.RUNTIME, new Claim(ClaimStatus.AFFIRMING, ""));
        Instant now = clock.instant();
        byte[] nonce = new byte[32];
        RANDOM.nextBytes(nonce);
        AttestationResult r = AttestationResult.builder().host(name).issuedAt(now).expiresAt(now.plusSeconds(300))
                .nonce(nonce).level(level).claims(claims).akId(HexFormat.of().formatHex(ak.name()))
                .pcrDigest(PCR_DIGEST).policyVersion(1).release("softphone-test").build();
        JWSObject o = new JWSObject(new JWSHeader.Builder(JWSAlgorithm.ES256).type(new JOSEObjectType("ear+jwt"))
                .build(), new Payload(r.encode()));
        o.sign(new ECDSASigner((ECPrivateKey) resultKey.getPrivate()));
        return o.serialize();
    }

    /** One host: TIK, device certificate, AK, passport. As a {@link HostIdentity} it quotes in software. */
    final class Host implements HostIdentity {
        final String name;
        final KeyPair tik;
        final X509Certificate certificate;
        final KeyPair akKeys;
        final TpmtPublic ak;
        final String passport;
        final AtomicInteger quotes = new AtomicInteger();

        Host(String name, KeyPair tik, X509Certificate certificate, KeyPair akKeys, TpmtPublic ak, String passport) {
            this.name = name;
            this.tik = tik;
            this.certificate = certificate;
            this.akKeys = akKeys;
            this.ak = ak;
            this.passport = passport;
        }

        DtlsFingerprint fingerprint() throws GeneralSecurityException {
            return DtlsFingerprint.sha256(certificate.getEncoded());
        }

        @Override
        public List<X509Certificate> certificateChain() {
            return akKeys == null ? List.of(certificate) : List.of(certificate, deviceCaCert);
        }

        @Override
        public byte[] sign(byte[] sha256Digest) throws IOException {
            try {
                Signature s = Signature.getInstance("NONEwithECDSA");
                s.initSign(tik.getPrivate(), RANDOM);
                s.update(sha256Digest);
                return s.sign();
            } catch (GeneralSecurityException e) {
                throw new IOException("software TIK signature failed", e);
            }
        }

        @Override
        public Evidence evidence(byte[] binder) {
            quotes.incrementAndGet();
            return evidence(binder, passport);
        }

        /** A quote by this host's AK over {@code binder}, with {@code passport}. */
        Evidence evidence(byte[] binder, String passport) {
            try {
                byte[] attest = TpmsAttest.encodeQuote(HexFormat.of().parseHex("000b" + "11".repeat(32)), binder,
                        new ClockInfo(123_456_789L, 7, 3, true), 0x2019_0712_0000_0001L, PCRS, PCR_DIGEST);
                Signature s = Signature.getInstance("SHA256withECDSA");
                s.initSign(akKeys.getPrivate(), RANDOM);
                s.update(attest);
                byte[] sig = TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, s.sign(), EccCurve.NIST_P256)
                        .encoded();
                return new Evidence(AttestationRequest.FORMAT_TPM2_PASSPORT, ak.encoded(), attest, sig, passport);
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private static X509Certificate certificate(String cn, java.security.PublicKey subject, KeyPair issuer,
                                               X509Certificate issuerCert, boolean ca, Instant now) throws Exception {
        X500Name name = new X500Name("CN=" + cn);
        X500Name issuerName = issuerCert == null ? name : new X500Name(issuerCert.getSubjectX500Principal().getName());
        var builder = new JcaX509v3CertificateBuilder(issuerName, BigInteger.valueOf(RANDOM.nextInt(1 << 30)),
                Date.from(now.minus(Duration.ofDays(1))), Date.from(now.plus(Duration.ofDays(30))), name, subject);
        if (ca) {
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getPrivate())));
    }

    private static KeyPair ec() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec(EccCurve.NIST_P256.jcaName()), RANDOM);
        return g.generateKeyPair();
    }
}
