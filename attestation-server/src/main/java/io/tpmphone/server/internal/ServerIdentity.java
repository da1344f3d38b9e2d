package io.tpmphone.server.internal;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;

/**
 * The server's keys, created on first start and kept in its state directory: a TLS key with a self-signed
 * certificate (SAN localhost, 127.0.0.1 and configured names) that agents pin, a result-signing key (ECDSA
 * P-256) whose public half relying parties use to check attestation results and audit checkpoints, and the keystore
 * authority (ECDSA P-256) whose approvals release hosts' sealed keystores. Stored in a
 * PKCS#12 file whose random password sits next to it. The directory is 0700 and every file in it is created 0600
 * (never restricted after the fact, see {@link OwnerOnlyFiles}); files of earlier versions are restricted on load.
 */
public final class ServerIdentity {
    private static final String TLS = "tls";
    private static final String RESULTS = "results";
    private static final String AUTHORITY = "keystore-authority";
    private static final String DEVICE_CA = "device-ca";
    private static final String KEYSTORE = "server-keys.p12";
    private static final String PASSWORD = "server-keys.pass";
    private static final String TLS_CERTIFICATE = "tls-cert.pem";
    private static final String RESULT_CERTIFICATE = "result-signing-cert.pem";

    private final KeyStore keyStore;
    private final char[] password;

    private ServerIdentity(KeyStore keyStore, char[] password) {
        this.keyStore = keyStore;
        this.password = password;
    }

    /** Loads the identity from {@code directory}, creating it on first use. */
    public static ServerIdentity loadOrCreate(Path directory, List<String> hostNames)
            throws IOException, GeneralSecurityException {
        OwnerOnlyFiles.createPrivateDirectories(directory);
        Path store = directory.resolve(KEYSTORE);
        Path pass = directory.resolve(PASSWORD);
        for (String name : List.of(KEYSTORE, PASSWORD, TLS_CERTIFICATE, RESULT_CERTIFICATE, KEYSTORE + ".tmp")) {
            OwnerOnlyFiles.restrict(directory.resolve(name)); // state directories of earlier versions
        }
        if (Files.exists(store) && Files.exists(pass)) {
            char[] password = Files.readString(pass, StandardCharsets.US_ASCII).trim().toCharArray();
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (InputStream in = Files.newInputStream(store)) {
                ks.load(in, password);
            }
            if (!ks.isKeyEntry(TLS) || !ks.isKeyEntry(RESULTS)) {
                throw new GeneralSecurityException(store + " lacks the '" + TLS + "' or '" + RESULTS
                        + "' key; move it away to create new server keys");
            }
            if (!ks.isKeyEntry(AUTHORITY) || !ks.isKeyEntry(DEVICE_CA)) {
                // A state directory from before keystore approvals: add the new keys, keep the others.
                addAuthority(ks, password);
                storeAtomically(directory, ks, password);
            }
            return new ServerIdentity(ks, password);
        }
        byte[] random = new byte[24];
        new SecureRandom().nextBytes(random);
        char[] password = Base64.getUrlEncoder().withoutPadding().encodeToString(random).toCharArray();
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        KeyPair tls = ecKeyPair();
        ks.setKeyEntry(TLS, tls.getPrivate(), password,
                new X509Certificate[] {selfSigned(tls, "tpmphone attestation server", hostNames, false)});
        KeyPair results = ecKeyPair();
        ks.setKeyEntry(RESULTS, results.getPrivate(), password,
                new X509Certificate[] {selfSigned(results, "tpmphone attestation results", List.of(), false)});
        addAuthority(ks, password);
        OwnerOnlyFiles.replace(pass, new String(password).getBytes(StandardCharsets.US_ASCII));
        storeAtomically(directory, ks, password);
        ServerIdentity identity = new ServerIdentity(ks, password);
        OwnerOnlyFiles.replace(directory.resolve(TLS_CERTIFICATE),
                pem(identity.tlsCertificate()).getBytes(StandardCharsets.US_ASCII));
        OwnerOnlyFiles.replace(directory.resolve(RESULT_CERTIFICATE),
                pem(identity.resultCertificate()).getBytes(StandardCharsets.US_ASCII));
        return identity;
    }

    private static void addAuthority(KeyStore ks, char[] password) throws GeneralSecurityException {
        if (!ks.isKeyEntry(AUTHORITY)) {
            KeyPair authority = ecKeyPair();
            ks.setKeyEntry(AUTHORITY, authority.getPrivate(), password,
                    new X509Certificate[] {selfSigned(authority, "tpmphone keystore authority", List.of(), false)});
        }
        if (!ks.isKeyEntry(DEVICE_CA)) {
            KeyPair ca = ecKeyPair();
            ks.setKeyEntry(DEVICE_CA, ca.getPrivate(), password,
                    new X509Certificate[] {selfSigned(ca, "tpmphone device CA", List.of(), true)});
        }
    }

    /** The CA that issues device-identity certificates for TPM-resident TLS identity keys. */
    public X509Certificate deviceCaCertificate() throws GeneralSecurityException {
        return (X509Certificate) keyStore.getCertificate(DEVICE_CA);
    }

    public PrivateKey deviceCaKey() throws GeneralSecurityException {
        return (PrivateKey) keyStore.getKey(DEVICE_CA, password);
    }

    private static void storeAtomically(Path directory, KeyStore ks, char[] password)
            throws IOException, GeneralSecurityException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ks.store(out, password);
        OwnerOnlyFiles.replace(directory.resolve(KEYSTORE), out.toByteArray());
    }

    /** The policy authority whose signatures approve a host's measured state for its sealed keystore. */
    public KeyPair keystoreAuthorityKeyPair() throws GeneralSecurityException {
        return new KeyPair(keyStore.getCertificate(AUTHORITY).getPublicKey(),
                (PrivateKey) keyStore.getKey(AUTHORITY, password));
    }

    public KeyStore keyStore() {
        return keyStore;
    }

    public char[] password() {
        return password.clone();
    }

    public String tlsAlias() {
        return TLS;
    }

    public X509Certificate tlsCertificate() throws GeneralSecurityException {
        return (X509Certificate) keyStore.getCertificate(TLS);
    }

    public X509Certificate resultCertificate() throws GeneralSecurityException {
        return (X509Certificate) keyStore.getCertificate(RESULTS);
    }

    public KeyPair resultKeyPair() throws GeneralSecurityException {
        return new KeyPair(resultCertificate().getPublicKey(), (PrivateKey) keyStore.getKey(RESULTS, password));
    }

    /**
     * The ids of the keys that every instance of a cluster must share, by role: the result-signing key (results and
     * audit checkpoints), the keystore authority (approvals that sealed keystores accept) and the device CA. An id is
     * the lowercase hex of the first 16 bytes of SHA-256 over the public key's SubjectPublicKeyInfo.
     */
    public java.util.Map<String, String> clusterKeyIds() throws GeneralSecurityException {
        java.util.Map<String, String> ids = new java.util.LinkedHashMap<>();
        ids.put("result-signing", keyId(resultKeyPair().getPublic()));
        ids.put("keystore-authority", keyId(keystoreAuthorityKeyPair().getPublic()));
        ids.put("device-ca", keyId(deviceCaCertificate().getPublicKey()));
        return ids;
    }

    private static String keyId(java.security.PublicKey key) throws GeneralSecurityException {
        byte[] digest = java.security.MessageDigest.getInstance("SHA-256").digest(key.getEncoded());
        return java.util.HexFormat.of().formatHex(digest, 0, 16);
    }

    public static String pem(Object value) {
        StringWriter out = new StringWriter();
        try (JcaPEMWriter w = new JcaPEMWriter(out)) {
            w.writeObject(value);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write PEM", e);
        }
        return out.toString();
    }

    private static KeyPair ecKeyPair() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }

    private static X509Certificate selfSigned(KeyPair pair, String commonName, List<String> hostNames, boolean ca)
            throws GeneralSecurityException {
        Instant now = Instant.now();
        X500Name subject = new X500Name("CN=" + commonName.replace(",", " "));
        JcaX509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(subject,
                new BigInteger(127, new SecureRandom()), Date.from(now.minus(Duration.ofMinutes(5))),
                Date.from(now.plus(Duration.ofDays(3650))), subject, pair.getPublic());
        try {
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(ca));
            if (ca) {
                builder.addExtension(Extension.keyUsage, true, new org.bouncycastle.asn1.x509.KeyUsage(
                        org.bouncycastle.asn1.x509.KeyUsage.keyCertSign | org.bouncycastle.asn1.x509.KeyUsage.cRLSign));
            }
            List<GeneralName> names = new ArrayList<>();
            names.add(new GeneralName(GeneralName.dNSName, "localhost"));
            names.add(new GeneralName(GeneralName.iPAddress, "127.0.0.1"));
            for (String host : hostNames) {
                boolean ip = host.matches("[0-9.]+") || host.contains(":");
                names.add(new GeneralName(ip ? GeneralName.iPAddress : GeneralName.dNSName, host));
            }
            if (!hostNames.isEmpty() || commonName.endsWith("server")) {
                builder.addExtension(Extension.subjectAlternativeName, false,
                        new GeneralNames(names.toArray(new GeneralName[0])));
            }
            return new JcaX509CertificateConverter().getCertificate(
                    builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate())));
        } catch (IOException | OperatorCreationException e) {
            throw new GeneralSecurityException("cannot create the self-signed certificate for " + commonName, e);
        }
    }
}
