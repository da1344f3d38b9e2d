package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JWSObject;
import com.nimbusds.jose.JWSSigner;
import com.nimbusds.jose.Payload;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jose.crypto.MACSigner;
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
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.attestation.VerificationException;
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
import java.time.ZoneOffset;
import java.util.Arrays;
import java.util.Date;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * One test per check {@link PassportVerifier} makes, each changing one thing of an otherwise valid peer: the device
 * certificate, the JWS (algorithm, signing key), the result (version, members, times, host, AK, PCR digest) and the
 * fresh quote (AK signature, binder of another handshake or another TIK). The evidence is made in software the way a
 * TPM makes it (TPMS_ATTEST signed by a restricted ECC AK); the passport is signed with nimbus-jose-jwt, an
 * implementation independent of the server's signer.
 */
@Timeout(30)
class PassportVerifierTest {
    private static final Instant NOW = Instant.parse("2025-05-01T10:00:00Z");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final PcrSelection PCRS = PcrSelection.parse("sha256:0-7,14");
    private static final byte[] PCR_DIGEST = HashAlgorithm.SHA256.digest(new byte[] {1, 2, 3});

    private static KeyPair deviceCa;
    private static X509Certificate deviceCaCert;
    private static KeyPair resultKey;
    private static Host alice;
    private static Host bob;

    /** A host: its TIK and device certificate, and its TPM's AK. */
    private record Host(String name, KeyPair tik, X509Certificate certificate, KeyPair akKeys, TpmtPublic ak) {
        String akId() {
            return HexFormat.of().formatHex(ak.name());
        }

        byte[] spki() {
            return certificate.getPublicKey().getEncoded();
        }
    }

    /** One handshake: the randoms and this side's nonce; the binder the peer's quote must carry. */
    private record Handshake(byte[] clientRandom, byte[] serverRandom, byte[] nonce) {
        static Handshake fresh() {
            return new Handshake(random(32), random(32), random(32));
        }

        byte[] binderFor(Host peer) {
            return Binder.compute(true, clientRandom, serverRandom, peer.spki(), nonce);
        }
    }

    @BeforeAll
    static void keys() throws Exception {
        deviceCa = ec();
        deviceCaCert = certificate("tpmphone device CA", deviceCa.getPublic(), deviceCa, null, true);
        resultKey = ec();
        alice = host("alice");
        bob = host("bob");
    }

    // ---- a valid peer ----------------------------------------------------------------------------------------------

    @Test
    void aValidPassportWithAFreshQuote_verifies_withTheServersLevel() throws Exception {
        Handshake h = Handshake.fresh();
        VerifiedPassport v = verifier(NOW).verify(chain(alice), evidence(alice, h.binderFor(alice),
                passport(result(alice).build())), h.binderFor(alice));
        assertEquals("alice", v.host());
        assertEquals(IntegrityLevel.MEASURED, v.level());
        assertEquals(alice.akId(), v.result().akId());
        assertEquals(NOW, v.verifiedAt());
    }

    @Test
    void aPassportThatSaysFailed_verifies_andTheLevelIsFailed() throws Exception {
        Handshake h = Handshake.fresh();
        AttestationResult failed = result(alice).level(IntegrityLevel.FAILED).claims(ClaimVector.empty()
                .with(ClaimName.EXECUTABLES, new Claim(ClaimStatus.CONTRAINDICATED, "jar x: digest differs")))
                .failedCheck("executables").build();
        VerifiedPassport v = verifier(NOW).verify(chain(alice), evidence(alice, h.binderFor(alice),
                passport(failed)), h.binderFor(alice));
        assertEquals(IntegrityLevel.FAILED, v.level());
    }

    // ---- CERTIFICATE -----------------------------------------------------------------------------------------------

    @Test
    void evidenceWithoutACertificate_isRefusedAtCertificate() {
        Handshake h = Handshake.fresh();
        PassportException e = refused(verifier(NOW), List.of(), alice, h, passport(result(alice).build()));
        assertEquals(PassportException.Check.CERTIFICATE, e.check());
    }

    @Test
    void aCertificateFromAnotherCa_isRefusedAtCertificate() throws Exception {
        KeyPair otherCa = ec();
        X509Certificate otherCaCert = certificate("tpmphone device CA", otherCa.getPublic(), otherCa, null, true);
        X509Certificate forged = certificate("alice", alice.tik().getPublic(), otherCa, otherCaCert, false);
        Handshake h = Handshake.fresh();
        PassportException e = refused(verifier(NOW), List.of(forged), alice, h, passport(result(alice).build()));
        assertEquals(PassportException.Check.CERTIFICATE, e.check());
        assertTrue(e.getMessage().contains("does not verify under the trusted device CA"), e.getMessage());
    }

    // ---- PASSPORT, ALGORITHM, SIGNATURE ---------------------------------------------------------------------------

    @Test
    void noPassport_isRefusedAtPassport() {
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(), "");
        assertEquals(PassportException.Check.PASSPORT, e.check());
        assertTrue(e.getMessage().contains("no attestation result attached"), e.getMessage());
    }

    @Test
    void aPassportThatIsNotAJws_isRefusedAtPassport() {
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(), "not.a.jws");
        assertEquals(PassportException.Check.PASSPORT, e.check());
    }

    @Test
    void aPassportWithTheWrongAlgorithm_isRefusedAtAlgorithm() throws Exception {
        byte[] secret = random(32);
        JWSObject hs256 = new JWSObject(new JWSHeader(JWSAlgorithm.HS256), new Payload(result(alice).build()
                .encode()));
        hs256.sign(new MACSigner(secret));
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(), hs256.serialize());
        assertEquals(PassportException.Check.ALGORITHM, e.check());
        assertTrue(e.getMessage().contains("HS256, not ES256"), e.getMessage());
    }

    @Test
    void aPassportSignedByAnotherKey_isRefusedAtSignature() throws Exception {
        String forged = jws(result(alice).build().encode(), new ECDSASigner((ECPrivateKey) ec().getPrivate()));
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(), forged);
        assertEquals(PassportException.Check.SIGNATURE, e.check());
    }

    @Test
    void aPassportWhosePayloadWasChanged_isRefusedAtSignature() throws Exception {
        String good = passport(result(alice).level(IntegrityLevel.FAILED).build());
        String[] parts = good.split("\\.");
        String better = java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(
                result(alice).build().encode());
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(),
                parts[0] + "." + better + "." + parts[2]);
        assertEquals(PassportException.Check.SIGNATURE, e.check());
    }

    // ---- RESULT: the strict decoder --------------------------------------------------------------------------------

    @Test
    void aPassportWithAnUnknownClaim_isRefusedAtResult_namingTheClaim() throws Exception {
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(),
                signedEdit(result(alice).build(), n -> n.put("tikId", "1234")));
        assertEquals(PassportException.Check.RESULT, e.check());
        assertEquals("tikId", malformed(e).field());
    }

    @Test
    void aPassportWithAMissingClaim_isRefusedAtResult_namingTheClaim() throws Exception {
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(),
                signedEdit(result(alice).build(), n -> n.remove("pcrDigest")));
        assertEquals(PassportException.Check.RESULT, e.check());
        assertEquals("pcrDigest", malformed(e).field());
    }

    @Test
    void aPassportOfAnotherVersion_isRefusedAtResult() throws Exception {
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(),
                signedEdit(result(alice).build(), n -> n.put("version", 2)));
        assertEquals(PassportException.Check.RESULT, e.check());
        assertEquals("version", malformed(e).field());
        assertTrue(e.getMessage().contains("version 2 is not supported"), e.getMessage());
    }

    @Test
    void aPassportWithAMistypedClaim_isRefusedAtResult() throws Exception {
        PassportException e = refused(verifier(NOW), chain(alice), alice, Handshake.fresh(),
                signedEdit(result(alice).build(), n -> n.put("exp", String.valueOf(NOW.getEpochSecond() + 60))));
        assertEquals(PassportException.Check.RESULT, e.check());
        assertEquals("exp", malformed(e).field());
    }

    // ---- EXPIRED, NOT_YET_VALID ------------------------------------------------------------------------------------

    @Test
    void anExpiredPassport_isRefusedAtExpired() {
        Handshake h = Handshake.fresh();
        String p = passport(result(alice).build()); // issued NOW, valid 300 s
        PassportException e = refused(verifier(NOW.plusSeconds(300)), chain(alice), alice, h, p);
        assertEquals(PassportException.Check.EXPIRED, e.check());
        assertTrue(e.getMessage().contains("expired at 2025-05-01T10:05:00Z"), e.getMessage());
    }

    @Test
    void aPassportIssuedInTheFuture_isRefusedAtNotYetValid_beyondTheTolerance() throws Exception {
        Handshake h = Handshake.fresh();
        String p = passport(result(alice).issuedAt(NOW.plusSeconds(31)).expiresAt(NOW.plusSeconds(300)).build());
        PassportException e = refused(verifier(NOW), chain(alice), alice, h, p);
        assertEquals(PassportException.Check.NOT_YET_VALID, e.check());
        String within = passport(result(alice).issuedAt(NOW.plusSeconds(30)).expiresAt(NOW.plusSeconds(300))
                .build());
        assertEquals(IntegrityLevel.MEASURED, verifier(NOW).verify(chain(alice), evidence(alice, h.binderFor(alice),
                within), h.binderFor(alice)).level());
    }

    // ---- HOST, AK --------------------------------------------------------------------------------------------------

    @Test
    void anotherHostsPassport_isRefusedAtHost() {
        Handshake h = Handshake.fresh();
        // Bob's genuine passport, shown with Alice's certificate and Alice's fresh quote.
        PassportException e = refused(verifier(NOW), chain(alice), alice, h, passport(result(bob).build()));
        assertEquals(PassportException.Check.HOST, e.check());
        assertTrue(e.getMessage().contains("for host 'bob', the device certificate for 'alice'"), e.getMessage());
    }

    @Test
    void aQuoteByAnotherHostsAk_isRefusedAtAk() {
        Handshake h = Handshake.fresh();
        // Alice's passport names Alice's AK; the fresh quote comes from Bob's TPM.
        Evidence e = evidence(bob, h.binderFor(alice), passport(result(alice).build()));
        PassportException x = assertThrows(PassportException.class,
                () -> verifier(NOW).verify(chain(alice), e, h.binderFor(alice)));
        assertEquals(PassportException.Check.AK, x.check());
        assertTrue(x.getMessage().contains("is not the AK"), x.getMessage());
    }

    @Test
    void aMalformedAk_isRefusedAtAk() {
        Handshake h = Handshake.fresh();
        Evidence good = evidence(alice, h.binderFor(alice), passport(result(alice).build()));
        Evidence bad = new Evidence(good.format(), Arrays.copyOf(good.akPublic(), 10), good.quote(),
                good.signature(), good.passport());
        PassportException x = assertThrows(PassportException.class,
                () -> verifier(NOW).verify(chain(alice), bad, h.binderFor(alice)));
        assertEquals(PassportException.Check.AK, x.check());
        assertInstanceOf(MalformedStructureException.class, x.getCause());
    }

    // ---- QUOTE -----------------------------------------------------------------------------------------------------

    @Test
    void aQuoteOverAnotherPcrDigest_isRefusedAtQuote() throws Exception {
        Handshake h = Handshake.fresh();
        // The server appraised one state; the TPM is in another now.
        String p = passport(result(alice).pcrDigest(HashAlgorithm.SHA256.digest(new byte[] {9})).build());
        PassportException e = refused(verifier(NOW), chain(alice), alice, h, p);
        assertEquals(PassportException.Check.QUOTE, e.check());
        assertEquals(Optional.of(VerificationException.Check.PCR_DIGEST), e.quoteCheck());
    }

    @Test
    void aFreshQuoteOverTheBinderOfAnotherHandshake_isRefusedAtQuote() {
        Handshake earlier = Handshake.fresh();
        Handshake now = Handshake.fresh();
        // Evidence relayed from an earlier handshake: quote over that handshake's binder.
        Evidence relayed = evidence(alice, earlier.binderFor(alice), passport(result(alice).build()));
        PassportException e = assertThrows(PassportException.class,
                () -> verifier(NOW).verify(chain(alice), relayed, now.binderFor(alice)));
        assertEquals(PassportException.Check.QUOTE, e.check());
        assertEquals(Optional.of(VerificationException.Check.QUALIFYING_DATA), e.quoteCheck());
    }

    @Test
    void aQuoteOverABinderForAnotherTik_isRefusedAtQuote() {
        Handshake h = Handshake.fresh();
        // Alice's TPM quoted a binder naming Bob's TIK (the key that would sign this handshake in a relay).
        Evidence forOtherTik = evidence(alice, h.binderFor(bob), passport(result(alice).build()));
        PassportException e = assertThrows(PassportException.class,
                () -> verifier(NOW).verify(chain(alice), forOtherTik, h.binderFor(alice)));
        assertEquals(PassportException.Check.QUOTE, e.check());
        assertEquals(Optional.of(VerificationException.Check.QUALIFYING_DATA), e.quoteCheck());
    }

    @Test
    void aQuoteNotSignedByTheAk_isRefusedAtQuote() throws Exception {
        Handshake h = Handshake.fresh();
        Evidence good = evidence(alice, h.binderFor(alice), passport(result(alice).build()));
        byte[] bobsSignature = sign(bob.akKeys(), good.quote());
        Evidence forged = new Evidence(good.format(), good.akPublic(), good.quote(), bobsSignature, good.passport());
        PassportException e = assertThrows(PassportException.class,
                () -> verifier(NOW).verify(chain(alice), forged, h.binderFor(alice)));
        assertEquals(PassportException.Check.QUOTE, e.check());
        assertEquals(Optional.of(VerificationException.Check.SIGNATURE), e.quoteCheck());
    }

    // ---- the TLS layer's view ------------------------------------------------------------------------------------

    @Test
    void appraise_ratesARefusedPeerFailed_namingTheCheckAndTheHost() {
        Handshake earlier = Handshake.fresh();
        Handshake now = Handshake.fresh();
        PeerAttestation p = verifier(NOW).appraise(chain(alice), evidence(alice, earlier.binderFor(alice),
                passport(result(alice).build())), now.binderFor(alice));
        assertEquals(IntegrityLevel.FAILED, p.level(), p::reason);
        assertEquals(Optional.of("alice"), p.host(), p::display);
        assertTrue(p.reason().startsWith("QUOTE: QUALIFYING_DATA"), p.reason());
        assertEquals("evidence refused at QUOTE", p.summary());
    }

    @Test
    void appraise_givesAVerifiedPeerTheServersLevel_andWhenItWasAppraised() {
        Handshake h = Handshake.fresh();
        PeerAttestation p = verifier(NOW.plusSeconds(10)).appraise(chain(alice), evidence(alice, h.binderFor(alice),
                passport(result(alice).build())), h.binderFor(alice));
        assertEquals(IntegrityLevel.MEASURED, p.level(), p::reason);
        assertEquals(Optional.of(Duration.ofSeconds(10)), p.freshness());
        assertTrue(p.summary().startsWith("release softphone-0.1.0, policy v3, AK "), p.summary());
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    private static PassportVerifier verifier(Instant now) {
        return new PassportVerifier(resultKey.getPublic(), List.of(deviceCaCert), Clock.fixed(now, ZoneOffset.UTC));
    }

    private static List<X509Certificate> chain(Host h) {
        return List.of(h.certificate(), deviceCaCert);
    }

    /** The result the server would sign for {@code h}, MEASURED, issued now for 300 s. */
    private static AttestationResult.Builder result(Host h) {
        ClaimVector claims = ClaimVector.empty()
                .with(ClaimName.INSTANCE_IDENTITY, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.EXECUTABLES, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.RUNTIME, new Claim(ClaimStatus.AFFIRMING, ""));
        return AttestationResult.builder().host(h.name()).issuedAt(NOW).expiresAt(NOW.plusSeconds(300))
                .nonce(random(32)).level(IntegrityLevel.MEASURED).claims(claims).akId(h.akId()).pcrDigest(PCR_DIGEST)
                .policyVersion(3).release("softphone-0.1.0");
    }

    private static String passport(AttestationResult r) {
        try {
            return jws(r.encode(), new ECDSASigner((ECPrivateKey) resultKey.getPrivate()));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** {@code r}'s JSON changed by {@code edit}, signed by the trusted result key. */
    private static String signedEdit(AttestationResult r, Consumer<ObjectNode> edit) throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(r.encode());
        edit.accept(n);
        return jws(JSON.writeValueAsBytes(n), new ECDSASigner((ECPrivateKey) resultKey.getPrivate()));
    }

    private static String jws(byte[] payload, JWSSigner signer) throws Exception {
        JWSObject o = new JWSObject(new JWSHeader.Builder(JWSAlgorithm.ES256).type(new JOSEObjectType("ear+jwt"))
                .build(), new Payload(payload));
        o.sign(signer);
        return o.serialize();
    }

    /** A TPM2_Quote by {@code h}'s AK over {@code binder} and the appraised PCR digest, with the passport. */
    private static Evidence evidence(Host h, byte[] binder, String passport) {
        try {
            byte[] attest = TpmsAttest.encodeQuote(HexFormat.of().parseHex("000b" + "11".repeat(32)), binder,
                    new ClockInfo(123_456_789L, 7, 3, true), 0x2019_0712_0000_0001L, PCRS, PCR_DIGEST);
            return new Evidence(AttestationRequest.FORMAT_TPM2_PASSPORT, h.ak().encoded(), attest,
                    sign(h.akKeys(), attest), passport);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] sign(KeyPair ak, byte[] attest) throws GeneralSecurityException {
        Signature s = Signature.getInstance("SHA256withECDSA");
        s.initSign(ak.getPrivate(), RANDOM);
        s.update(attest);
        return TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, s.sign(), EccCurve.NIST_P256).encoded();
    }

    private static PassportException refused(PassportVerifier v, List<X509Certificate> chain, Host quoting,
                                             Handshake h, String passport) {
        Evidence e = evidence(quoting, h.binderFor(quoting), passport);
        return assertThrows(PassportException.class, () -> v.verify(chain, e, h.binderFor(quoting)),
                () -> "should be refused: " + passport);
    }

    private static MalformedStructureException malformed(PassportException e) {
        return assertInstanceOf(MalformedStructureException.class, e.getCause(), e::getMessage);
    }

    private static Host host(String name) throws Exception {
        KeyPair tik = ec();
        KeyPair ak = ec();
        TpmtPublic akPublic = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256)
                .attributes(ObjectAttribute.FIXED_TPM, ObjectAttribute.FIXED_PARENT,
                        ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
                        ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(ak.getPublic()).build();
        return new Host(name, tik, certificate(name, tik.getPublic(), deviceCa, deviceCaCert, false), ak, akPublic);
    }

    private static X509Certificate certificate(String cn, java.security.PublicKey subject, KeyPair issuer,
                                               X509Certificate issuerCert, boolean ca) throws Exception {
        X500Name name = new X500Name("CN=" + cn);
        X500Name issuerName = issuerCert == null ? name : new X500Name(issuerCert.getSubjectX500Principal().getName());
        var builder = new JcaX509v3CertificateBuilder(issuerName, BigInteger.valueOf(RANDOM.nextInt(1 << 30)),
                Date.from(NOW.minus(Duration.ofDays(1))), Date.from(NOW.plus(Duration.ofDays(30))), name, subject);
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

    private static byte[] random(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }
}
