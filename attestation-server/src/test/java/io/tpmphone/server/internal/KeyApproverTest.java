package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.KeystoreApproval;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.DERSequence;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The keystore authority ({@link KeyApprover}): which PCR selections it approves, and what it signs, checked in
 * software against {@link KeystorePolicy}. {@code KeyApproverIT} shows in a real TPM what the approval opens.
 */
@Timeout(30)
class KeyApproverTest {
    private static final PcrSelection REQUIRED = PcrSelection.parse("sha256:0-7,14");
    private static KeyPair authority;
    private static KeyApprover approver;

    @BeforeAll
    static void keys() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        authority = g.generateKeyPair();
        approver = new KeyApprover(authority);
    }

    @Test
    void refusal_acceptsTheKeystorePcrsWhenTheyCoverThePolicyAndLieWithinTheQuote() {
        assertEquals(Optional.empty(), KeyApprover.refusal(TpmHost.KEYSTORE_PCRS, REQUIRED, REQUIRED));
    }

    @Test
    void refusal_namesAnotherBank() {
        String why = KeyApprover.refusal(PcrSelection.parse("sha1:0-7,14"), REQUIRED, REQUIRED).orElseThrow();
        assertTrue(why.contains("bank sha1 is not the quoted sha256"), why);
    }

    @Test
    void refusal_namesPcrsThatDoNotCoverThePolicy() {
        String why = KeyApprover.refusal(PcrSelection.parse("sha256:14"), REQUIRED, REQUIRED).orElseThrow();
        assertTrue(why.contains("do not cover the policy's"), why);
    }

    @Test
    void refusal_namesPcrsTheQuoteDidNotCover() {
        String why = KeyApprover.refusal(PcrSelection.parse("sha256:0-7,14,15"), REQUIRED, REQUIRED).orElseThrow();
        assertTrue(why.contains("are not all in the quote"), why);
    }

    @Test
    void anApproval_isOfTheQuotedSubset_forThisHost_untilTheQuotedClockPlusTheTtl_signedByTheAuthority()
            throws Exception {
        PcrValues quoted = values("sha256:0-7,14,16");
        byte[] ekName = new byte[34];
        ekName[1] = 0x0b;
        Arrays.fill(ekName, 2, 34, (byte) 0x11);
        KeystoreApproval a = approver.approve(quoted, TpmHost.KEYSTORE_PCRS, 7, 1_000_000L, Duration.ofMinutes(10),
                ekName);

        assertEquals(TpmHost.KEYSTORE_PCRS, a.pcrSelection());
        PcrValues subset = values("sha256:0-7,14");
        assertEquals(KeystorePolicy.approvedPolicy(subset), a.pcrPolicy(), "PCR 16 is not part of the approval");
        assertEquals(7, a.resetCount());
        assertEquals(1_600_000L, a.clockBefore());
        assertEquals(KeystorePolicy.approvedPolicy(subset, 7, 1_600_000L), a.approvedPolicy());
        assertArrayEquals(KeystorePolicy.hostPolicyRef(ekName), a.policyRef());
        assertArrayEquals(approver.publicArea().encoded(), a.authority().encoded());
        // What a TPM's VerifySignature checks, in software: ECDSA over aHash by the authority.
        Signature ecdsa = Signature.getInstance("NONEwithECDSA");
        ecdsa.initVerify(authority.getPublic());
        ecdsa.update(KeystorePolicy.approvalDigest(a.approvedPolicy(), a.policyRef()));
        assertTrue(ecdsa.verify(new DERSequence(new org.bouncycastle.asn1.ASN1Encodable[] {
            new ASN1Integer(new java.math.BigInteger(1, a.signature().r())),
            new ASN1Integer(new java.math.BigInteger(1, a.signature().s()))}).getEncoded()),
                "the approval's signature is the authority's over aHash");
        assertEquals(a, KeystoreApproval.decode(a.encode()), "the encoding round-trips");
    }

    /** Values for {@code selection}: PCR i holds 32 bytes of i. */
    private static PcrValues values(String selection) {
        PcrSelection s = PcrSelection.parse(selection);
        List<byte[]> v = new ArrayList<>();
        for (int pcr : s.pcrs()) {
            byte[] b = new byte[32];
            Arrays.fill(b, (byte) pcr);
            v.add(b);
        }
        return PcrValues.of(s, v);
    }
}
