package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeystoreApproval;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmObjectBlob;
import io.tpmphone.tpm.TpmResponseException;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The keystore authority's approval in a real TPM (swtpm): it opens a keystore sealed for the quoted host in the quoted
 * state, nothing sealed for another host, and nothing once the state moved on.
 */
@Timeout(60)
class KeyApproverIT {
    private static TpmHost host;
    private static KeyApprover approver;

    @BeforeAll
    static void start() throws Exception {
        host = TpmHost.start();
        host.tpm().ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        approver = new KeyApprover(g.generateKeyPair());
    }

    @AfterAll
    static void stop() {
        if (host != null) {
            host.close();
        }
    }

    @Test
    void anApproval_opensAKeystoreSealedForTheQuotedHost_inTheQuotedState_andNothingElse() throws Exception {
        TpmClient tpm = host.tpm();
        PcrValues state = tpm.pcrRead(TpmHost.KEYSTORE_PCRS);
        ClockInfo clock = tpm.readClock();
        KeystoreApproval a = approver.approve(state, TpmHost.KEYSTORE_PCRS, clock.resetCount(), clock.clock(),
                Duration.ofMinutes(10), host.ek().name());
        TpmObjectBlob mine = seal(KeystorePolicy.hostPolicyRef(host.ek().name()));
        byte[] otherEk = host.ek().name().clone();
        otherEk[otherEk.length - 1] ^= 1;
        TpmObjectBlob anotherHosts = seal(KeystorePolicy.hostPolicyRef(otherEk));

        SecretBytes opened = tpm.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, mine, a.pcrSelection(),
                PolicyApproval.of(a));
        assertArrayEquals(new byte[] {7}, opened.reveal());
        opened.destroy();
        TpmResponseException other = assertThrows(TpmResponseException.class,
                () -> tpm.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, anotherHosts, a.pcrSelection(),
                        PolicyApproval.of(a)));
        assertEquals("POLICY_FAIL", other.responseCodeName(), other::getMessage);

        // The state moves on (a new measurement): the approval opens nothing any more.
        tpm.pcrExtend(TpmHost.PCR, HashAlgorithm.SHA256.digest(new byte[] {1}));
        assertThrows(TpmResponseException.class, () -> tpm.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, mine,
                a.pcrSelection(), PolicyApproval.of(a)));
    }

    private static TpmObjectBlob seal(byte[] policyRef) throws Exception {
        return host.tpm().seal(PersistentHandle.SRK_ECC, SecretBytes.copyOf(new byte[] {7}),
                KeystorePolicy.sealingPolicy(approver.publicArea().name(), policyRef).value());
    }
}
