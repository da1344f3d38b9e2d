package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.StringWriter;
import java.security.GeneralSecurityException;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.security.spec.ECGenParameterSpec;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.util.io.pem.PemObject;
import org.bouncycastle.util.io.pem.PemWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The server's result key as GET /v1/server publishes it (PEM "PUBLIC KEY"), read by the agent for its child. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ResultKeyPemTest {

    private static String pem(String type, byte[] content) throws Exception {
        StringWriter out = new StringWriter();
        try (PemWriter w = new PemWriter(out)) {
            w.writeObject(new PemObject(type, content));
        }
        return out.toString();
    }

    private static PublicKey key(String algorithm, Object parameters) throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance(algorithm);
        if (parameters instanceof ECGenParameterSpec spec) {
            g.initialize(spec);
        } else {
            g.initialize((Integer) parameters);
        }
        return g.generateKeyPair().getPublic();
    }

    @Test
    void anEcPublicKey_isReadAsItsSubjectPublicKeyInfo() throws Exception {
        PublicKey ec = key("EC", new ECGenParameterSpec("secp256r1"));
        assertArrayEquals(ec.getEncoded(), Agent.resultKeyFromPem(pem("PUBLIC KEY", ec.getEncoded())));
    }

    @Test
    void otherBlocks_otherKeys_andGarbage_areRejected() throws Exception {
        PublicKey ec = key("EC", new ECGenParameterSpec("secp256r1"));
        GeneralSecurityException e = assertThrows(GeneralSecurityException.class,
                () -> Agent.resultKeyFromPem(pem("CERTIFICATE", ec.getEncoded())));
        assertTrue(e.getMessage().contains("CERTIFICATE"), e.getMessage());
        assertThrows(GeneralSecurityException.class,
                () -> Agent.resultKeyFromPem(pem("PUBLIC KEY", key("RSA", 2048).getEncoded())));
        assertThrows(GeneralSecurityException.class, () -> Agent.resultKeyFromPem(""));
        assertThrows(GeneralSecurityException.class, () -> Agent.resultKeyFromPem("-----BEGIN PUBLIC KEY-----\nAAAA"));
    }
}
