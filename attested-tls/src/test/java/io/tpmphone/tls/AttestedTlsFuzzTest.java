package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
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
import java.io.InputStream;
import java.math.BigInteger;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.ECPrivateKeySpec;
import java.security.spec.ECPublicKeySpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Date;
import java.util.HexFormat;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.jce.ECNamedCurveTable;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of what a peer sends in an attested TLS handshake: the {@code attestation_request}
 * extension and the evidence in its end-entity CertificateEntry, through {@link PassportVerifier} (JWS, the signed
 * result, the AK, the quote over this handshake's binder) as the handshake does. Keys are fixed (private scalars
 * below) so that a seed stays a valid passport between runs; the seed {@code evidenceInputs/alice-measured} verifies.
 * Contract: a value, or {@link MalformedExtensionException} (mapped to a TLS alert); the verifier returns a level or
 * throws {@link PassportException}. Regression inputs under {@code AttestedTlsFuzzTestInputs/}; fuzz with
 * {@code ./tpmphone fuzz tls-request} or {@code tls-evidence}.
 */
@Timeout(10)
class AttestedTlsFuzzTest {
    static final Instant NOW = Instant.parse("2025-05-01T10:00:00Z");
    static final byte[] BINDER = HexFormat.of().parseHex("b1" + "00".repeat(30) + "d3");
    static final PcrSelection PCRS = PcrSelection.parse("sha256:0-7,14");
    static final byte[] PCR_DIGEST = HashAlgorithm.SHA256.digest(new byte[] {1, 2, 3});

    private static KeyPair deviceCa;
    private static KeyPair resultKey;
    private static KeyPair ak;
    private static TpmtPublic akPublic;
    private static List<X509Certificate> aliceChain;
    private static PassportVerifier verifier;

    @BeforeAll
    static void fixedKeys() throws Exception {
        deviceCa = p256(0xCA);
        resultKey = p256(0x5E);
        ak = p256(0xA4);
        KeyPair tik = p256(0x71);
        akPublic = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256)
                .attributes(ObjectAttribute.FIXED_TPM, ObjectAttribute.FIXED_PARENT,
                        ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
                        ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(ak.getPublic()).build();
        X509Certificate ca = certificate("tpmphone device CA", deviceCa.getPublic(), null, true);
        aliceChain = List.of(certificate("alice", tik.getPublic(), ca, false));
        verifier = new PassportVerifier(resultKey.getPublic(), List.of(ca), Clock.fixed(NOW, ZoneOffset.UTC));
    }

    /** The seed: alice's evidence as her agent and TPM make it. The harness reaches the end of verification. */
    @Test
    void theSeedEvidence_verifiesAsAlicesMeasuredPassport() throws Exception {
        byte[] seed;
        try (InputStream in = getClass().getResourceAsStream("AttestedTlsFuzzTestInputs/evidence/alice-measured")) {
            seed = in.readAllBytes();
        }
        VerifiedPassport v = verifier.verify(aliceChain, Evidence.decode(seed), BINDER);
        assertEquals("alice", v.host());
        assertEquals(IntegrityLevel.MEASURED, v.level());
    }

    @FuzzTest
    void attestationRequest(byte[] data) {
        AttestationRequest r;
        try {
            r = AttestationRequest.decode(data);
        } catch (MalformedExtensionException e) {
            assertNotNull(Handshakes.alert(e).getAlertDescription() >= 0 ? e.getMessage() : null);
            return;
        }
        assertArrayEquals(data, r.encode(), "a decoded request is exactly its input");
        assertTrue(r.nonce().length >= AttestationRequest.MIN_NONCE && r.nonce().length <= AttestationRequest.MAX_NONCE);
    }

    @FuzzTest
    void evidence(byte[] data) {
        Evidence e;
        try {
            e = Evidence.decode(data);
        } catch (MalformedExtensionException refused) {
            assertNotNull(Handshakes.alert(refused).getMessage());
            return;
        }
        assertArrayEquals(data, e.encode(), "decoded evidence is exactly its input");
        PeerAttestation peer = verifier.appraise(aliceChain, e, BINDER);
        try {
            VerifiedPassport v = verifier.verify(aliceChain, e, BINDER);
            assertEquals("alice", v.host());
            assertEquals(v.level(), peer.level());
            assertEquals(akPublic, v.ak(), "only alice's AK passes");
        } catch (PassportException refused) {
            assertEquals(IntegrityLevel.FAILED, peer.level(), "a refused passport is FAILED: " + peer);
        }
    }

    /**
     * Alice's evidence: her AK's quote over {@link #BINDER}, and her MEASURED passport signed by the result key. (How
     * the seed was made; ECDSA signatures differ from run to run.)
     */
    static Evidence aliceEvidence() throws Exception {
        byte[] attest = TpmsAttest.encodeQuote(HexFormat.of().parseHex("000b" + "11".repeat(32)), BINDER,
                new ClockInfo(123_456_789L, 7, 3, true), 0x2019_0712_0000_0001L, PCRS, PCR_DIGEST);
        Signature s = Signature.getInstance("SHA256withECDSA");
        s.initSign(ak.getPrivate());
        s.update(attest);
        byte[] signature = TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, s.sign(), EccCurve.NIST_P256).encoded();
        ClaimVector claims = ClaimVector.empty()
                .with(ClaimName.INSTANCE_IDENTITY, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.EXECUTABLES, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.RUNTIME, new Claim(ClaimStatus.AFFIRMING, ""));
        AttestationResult result = AttestationResult.builder().host("alice").issuedAt(NOW.minusSeconds(10))
                .expiresAt(NOW.plusSeconds(290)).nonce(new byte[32]).level(IntegrityLevel.MEASURED).claims(claims)
                .akId(HexFormat.of().formatHex(akPublic.name())).pcrDigest(PCR_DIGEST).policyVersion(3)
                .release("softphone-0.1.0").build();
        JWSObject jws = new JWSObject(new JWSHeader.Builder(JWSAlgorithm.ES256).type(new JOSEObjectType("ear+jwt"))
                .build(), new Payload(result.encode()));
        jws.sign(new ECDSASigner((ECPrivateKey) resultKey.getPrivate()));
        return new Evidence(AttestationRequest.FORMAT_TPM2_PASSPORT, akPublic.encoded(), attest, signature,
                jws.serialize());
    }

    /** A P-256 key pair with private scalar {@code d}: the same key in every run. */
    private static KeyPair p256(int d) throws Exception {
        var bc = ECNamedCurveTable.getParameterSpec("secp256r1");
        var q = bc.getG().multiply(BigInteger.valueOf(d)).normalize();
        KeyFactory kf = KeyFactory.getInstance("EC");
        java.security.AlgorithmParameters ap = java.security.AlgorithmParameters.getInstance("EC");
        ap.init(new java.security.spec.ECGenParameterSpec("secp256r1"));
        ECParameterSpec params = ap.getParameterSpec(ECParameterSpec.class);
        return new KeyPair(kf.generatePublic(new ECPublicKeySpec(new ECPoint(q.getAffineXCoord().toBigInteger(),
                q.getAffineYCoord().toBigInteger()), params)),
                kf.generatePrivate(new ECPrivateKeySpec(BigInteger.valueOf(d), params)));
    }

    private static X509Certificate certificate(String cn, java.security.PublicKey subject, X509Certificate issuer,
                                               boolean ca) throws Exception {
        X500Name name = new X500Name("CN=" + cn);
        X500Name issuerName = issuer == null ? name : new X500Name(issuer.getSubjectX500Principal().getName());
        var builder = new JcaX509v3CertificateBuilder(issuerName, BigInteger.valueOf(cn.hashCode() & 0x7fffffff),
                Date.from(NOW.minus(Duration.ofDays(1))), Date.from(NOW.plus(Duration.ofDays(30))), name, subject);
        if (ca) {
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder("SHA256withECDSA").build(deviceCa.getPrivate())));
    }
}
