package io.tpmphone.server.internal;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;

/**
 * A TLS certificate chain and its private key that the operator supplies (issued by a private CA that agents trust),
 * instead of the self-signed certificate the server makes in {@code keys/}. The chain is PEM, server certificate
 * first; the key is PEM (PKCS#8, or OpenSSL's EC/RSA form, unencrypted) in a file read under the admin token file's
 * rules ({@link OwnerOnlyFiles#readPrivateFile}). Immutable once loaded; the key lives only in the in-memory key store
 * Jetty gets.
 */
public final class TlsCredentials {
    static final String ALIAS = "tls";
    private static final int MAX_KEY_FILE = 64 * 1024;

    private final KeyStore keyStore;
    private final char[] password;
    private final List<X509Certificate> chain;

    private TlsCredentials(KeyStore keyStore, char[] password, List<X509Certificate> chain) {
        this.keyStore = keyStore;
        this.password = password;
        this.chain = chain;
    }

    /**
     * Reads and checks the pair: the chain must hold a certificate, the key must be the certificate's (a probe
     * signature verifies), and the certificate must be valid now.
     *
     * @throws GeneralSecurityException naming the file and what is wrong
     */
    public static TlsCredentials load(Path chainPem, Path keyPem) throws IOException, GeneralSecurityException {
        List<X509Certificate> chain = new ArrayList<>();
        try (InputStream in = Files.newInputStream(chainPem)) {
            for (java.security.cert.Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                chain.add((X509Certificate) c);
            }
        } catch (CertificateException e) {
            throw new CertificateException(chainPem + " is not a PEM certificate chain: " + e.getMessage(), e);
        }
        if (chain.isEmpty()) {
            throw new CertificateException(chainPem + " holds no certificate: give the server's certificate (PEM),"
                    + " then its CA's");
        }
        chain.get(0).checkValidity();
        PrivateKey key = privateKey(keyPem);
        String algorithm = key.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
        byte[] probe = new byte[32];
        new SecureRandom().nextBytes(probe);
        Signature s = Signature.getInstance(algorithm);
        s.initSign(key);
        s.update(probe);
        byte[] signature = s.sign();
        Signature v = Signature.getInstance(algorithm);
        v.initVerify(chain.get(0).getPublicKey());
        v.update(probe);
        boolean matches;
        try {
            matches = v.verify(signature);
        } catch (GeneralSecurityException e) {
            matches = false; // another key type
        }
        if (!matches) {
            throw new GeneralSecurityException("the key in " + keyPem + " is not the key of the first certificate in "
                    + chainPem + " (" + chain.get(0).getSubjectX500Principal() + "): give the pair the CA issued");
        }
        byte[] random = new byte[24];
        new SecureRandom().nextBytes(random);
        char[] password = java.util.Base64.getEncoder().encodeToString(random).toCharArray();
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        ks.setKeyEntry(ALIAS, key, password, chain.toArray(new X509Certificate[0]));
        return new TlsCredentials(ks, password, List.copyOf(chain));
    }

    private static PrivateKey privateKey(Path keyPem) throws IOException, GeneralSecurityException {
        byte[] content = OwnerOnlyFiles.readPrivateFile(keyPem, MAX_KEY_FILE);
        char[] text = new char[content.length];
        for (int i = 0; i < content.length; i++) {
            text[i] = (char) (content[i] & 0xff);
        }
        Arrays.fill(content, (byte) 0);
        try (PEMParser parser = new PEMParser(new java.io.CharArrayReader(text))) {
            Object o = parser.readObject();
            JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
            if (o instanceof PrivateKeyInfo info) {
                return converter.getPrivateKey(info);
            }
            if (o instanceof PEMKeyPair pair) {
                return converter.getKeyPair(pair).getPrivate();
            }
            throw new GeneralSecurityException(keyPem + " holds no unencrypted private key (PEM \"PRIVATE KEY\","
                    + " \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY\" expected" + (o == null ? "" : ", found "
                    + o.getClass().getSimpleName()) + ")");
        } finally {
            Arrays.fill(text, '\0');
        }
    }

    public KeyStore keyStore() {
        return keyStore;
    }

    public char[] password() {
        return password.clone();
    }

    public String alias() {
        return ALIAS;
    }

    /** The server's certificate (the chain's first). */
    public X509Certificate certificate() {
        return chain.get(0);
    }
}
