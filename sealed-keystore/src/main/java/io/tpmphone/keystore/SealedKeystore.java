package io.tpmphone.keystore;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PolicyDigest;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.keystore.internal.FingerprintLog;
import io.tpmphone.keystore.internal.Hkdf;
import io.tpmphone.keystore.internal.KeystoreDirectory;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmObjectBlob;
import io.tpmphone.tpm.TpmResponseException;
import io.tpmphone.tpm.TpmTransportException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Optional;
import java.util.Properties;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A keystore whose root secret only the TPM can release, and only in an approved measured state: SRTP master keys
 * are derived from it per call, and it never issues or accepts the same key material twice.
 *
 * <p><b>Root secret.</b> 32 bytes of TPM randomness XORed with 32 bytes of {@link SecureRandom}, sealed under the ECC
 * storage root key ({@code 0x81000002}) as a keyed-hash object whose only authorization is its policy (see
 * {@link Protection}). Optionally a second sealed object, opened by the user's PIN as its authValue and
 * <em>not</em> noDA, holds a 32-byte PIN share: derivation then uses {@code HKDF-Extract("tpmphone-keystore-pin-v1",
 * root || pinShare)}, so the PIN is cryptographically required and the TPM's dictionary-attack protection counts
 * every wrong PIN.
 *
 * <p><b>SRTP keys.</b> {@code HKDF-SHA256(salt = 32 fresh TPM random bytes, IKM = root,
 * info = "tpmphone-srtp-v1" || suite name || callId (UTF-8))}, split into master key and master salt. The root and
 * every intermediate are wiped right after derivation. The SHA-256 fingerprint of {@code masterKey || masterSalt} of
 * every issued key and of every key checked by {@link #checkOffered} is appended to a durable log before the call
 * returns; key material with a known fingerprint is never issued and is refused when offered.
 *
 * <p><b>Thread-safety.</b> Thread-safe: key releases are serialized (the TPM serializes them anyway). The
 * {@link TpmClient} is the caller's; the keystore does not close it. Errors are {@link KeystoreException}s with a
 * {@link KeystoreException.Reason}; messages and logs never contain key material.
 */
public final class SealedKeystore implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SealedKeystore.class);
    private static final String FORMAT = "tpmphone-keystore-v1";
    private static final PersistentHandle PARENT = PersistentHandle.SRK_ECC;
    private static final byte[] SRTP_INFO = "tpmphone-srtp-v1".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] PIN_SALT = "tpmphone-keystore-pin-v1".getBytes(StandardCharsets.US_ASCII);
    private static final int ROOT_LENGTH = 32;
    private static final int MAX_CALL_ID_LENGTH = 1024;
    private static final int MAX_DERIVATION_ATTEMPTS = 4;

    private final TpmClient tpm;
    private final Path directory;
    private final Protection protection;
    private final TpmObjectBlob root;
    private final TpmObjectBlob pinObject;
    private final FingerprintLog fingerprints;
    private boolean closed;

    private SealedKeystore(TpmClient tpm, Path directory, Protection protection, TpmObjectBlob root,
                           TpmObjectBlob pinObject, FingerprintLog fingerprints) {
        this.tpm = tpm;
        this.directory = directory;
        this.protection = protection;
        this.root = root;
        this.pinObject = pinObject;
        this.fingerprints = fingerprints;
    }

    // ---------------------------------------------------------------------------------------------- lifecycle

    /**
     * Creates a keystore in {@code directory} (created if absent; must not hold a keystore): a fresh root secret
     * sealed per {@code protection}, and a PIN object if {@code pin} is given. In PCR_ONLY mode the root is sealed to
     * the PCR values read now.
     *
     * @param pin the user's PIN as UTF-8, 1..32 bytes; not retained
     */
    public static SealedKeystore create(TpmClient tpm, Path directory, Protection protection,
                                        Optional<SecretBytes> pin) throws KeystoreException {
        Objects.requireNonNull(tpm, "tpm");
        Objects.requireNonNull(directory, "directory");
        Objects.requireNonNull(protection, "protection");
        Objects.requireNonNull(pin, "pin");
        if (pin.isPresent() && (pin.get().length() < 1 || pin.get().length() > 32)) {
            throw new IllegalArgumentException("a PIN is 1..32 bytes of UTF-8, got " + pin.get().length());
        }
        Path metadata = directory.resolve(KeystoreDirectory.METADATA);
        if (Files.exists(metadata)) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, directory + " already holds a keystore;"
                    + " open it, or delete the directory to start over (all keys derived from it become unusable)");
        }
        try {
            tpm.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
            byte[] authPolicy = switch (protection.mode()) {
                case AUTHORIZED -> KeystorePolicy.sealingPolicy(protection.authority().orElseThrow().name(),
                        protection.approvalPolicyRef().orElseThrow()).value();
                case PCR_ONLY -> PolicyDigest.initial(HashAlgorithm.SHA256)
                        .policyPcr(tpm.pcrRead(protection.pcrs())).value();
            };
            TpmObjectBlob rootBlob;
            SecretBytes rootSecret = freshSecret(tpm);
            try {
                rootBlob = tpm.seal(PARENT, rootSecret, authPolicy);
            } finally {
                rootSecret.destroy();
            }
            TpmObjectBlob pinBlob = null;
            if (pin.isPresent()) {
                SecretBytes share = freshSecret(tpm);
                try {
                    pinBlob = tpm.sealWithPassword(PARENT, share, pin.get());
                } finally {
                    share.destroy();
                }
            }
            OwnerOnlyFiles.createPrivateDirectories(directory);
            // The log exists before the metadata that makes the directory a keystore; a re-created keystore keeps
            // the fingerprints of everything issued or offered before (still "seen").
            FingerprintLog fingerprints = FingerprintLog.open(directory.resolve(KeystoreDirectory.FINGERPRINTS), true);
            KeystoreDirectory.writeAtomically(directory.resolve(KeystoreDirectory.ROOT), rootBlob.toBytes());
            if (pinBlob != null) {
                KeystoreDirectory.writeAtomically(directory.resolve(KeystoreDirectory.PIN), pinBlob.toBytes());
            }
            Properties p = new Properties();
            p.setProperty("format", FORMAT);
            p.setProperty("mode", protection.mode().name());
            p.setProperty("pcrs", protection.pcrs().toString());
            p.setProperty("parent", PARENT.toString());
            p.setProperty("pin", Boolean.toString(pinBlob != null));
            protection.authority().ifPresent(a -> p.setProperty("authority", HexFormat.of().formatHex(a.encoded())));
            protection.approvalPolicyRef().ifPresent(r -> p.setProperty("policyRef", HexFormat.of().formatHex(r)));
            KeystoreDirectory.writeProperties(metadata, p);
            LOG.info("created {} keystore in {} over PCRs {}{}", protection.mode(), directory, protection.pcrs(),
                    pinBlob != null ? " with a PIN" : "");
            return new SealedKeystore(tpm, directory, protection, rootBlob, pinBlob, fingerprints);
        } catch (TpmException e) {
            throw tpmFailure(directory, protection.pcrs(), "creating the keystore", e);
        } catch (IOException e) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "cannot write the keystore in " + directory
                    + ": " + e.getMessage(), e);
        }
    }

    /** Opens the keystore in {@code directory}, reloading the fingerprints of all key material seen so far. */
    public static SealedKeystore open(TpmClient tpm, Path directory) throws KeystoreException {
        Objects.requireNonNull(tpm, "tpm");
        Objects.requireNonNull(directory, "directory");
        try {
            Properties p = KeystoreDirectory.readProperties(directory.resolve(KeystoreDirectory.METADATA));
            if (!FORMAT.equals(p.getProperty("format"))) {
                throw new KeystoreException(KeystoreException.Reason.STORAGE, directory + " holds keystore format "
                        + p.getProperty("format") + "; expected " + FORMAT);
            }
            PcrSelection pcrs = PcrSelection.parse(required(p, "pcrs"));
            Protection protection = switch (Protection.Mode.valueOf(required(p, "mode"))) {
                case AUTHORIZED -> Protection.authorized(pcrs,
                        TpmtPublic.parse(HexFormat.of().parseHex(required(p, "authority"))),
                        p.getProperty("policyRef") == null ? Protection.policyRef()   // keystores before v0.1 hosts
                                : HexFormat.of().parseHex(p.getProperty("policyRef")));
                case PCR_ONLY -> Protection.pcrOnly(pcrs);
            };
            TpmObjectBlob rootBlob = TpmObjectBlob.fromBytes(
                    Files.readAllBytes(directory.resolve(KeystoreDirectory.ROOT)));
            TpmObjectBlob pinBlob = Boolean.parseBoolean(required(p, "pin"))
                    ? TpmObjectBlob.fromBytes(Files.readAllBytes(directory.resolve(KeystoreDirectory.PIN))) : null;
            FingerprintLog log = FingerprintLog.open(directory.resolve(KeystoreDirectory.FINGERPRINTS), false);
            LOG.info("opened {} keystore in {} ({} fingerprints)", protection.mode(), directory, log.size());
            return new SealedKeystore(tpm, directory, protection, rootBlob, pinBlob, log);
        } catch (NoSuchFileException e) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "no keystore in " + directory + " (missing "
                    + e.getFile() + "); create one first", e);
        } catch (IOException | MalformedStructureException | IllegalArgumentException e) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "the keystore in " + directory
                    + " is unreadable or corrupt: " + e.getMessage(), e);
        }
    }

    private static String required(Properties p, String key) throws IOException {
        String v = p.getProperty(key);
        if (v == null) {
            throw new IOException("keystore metadata lacks '" + key + "'");
        }
        return v;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            try {
                fingerprints.close();
            } catch (IOException e) {
                LOG.warn("closing the fingerprint log of {} failed: {}", directory, e.toString());
            }
        }
    }

    // ---------------------------------------------------------------------------------------------- queries

    public Protection protection() {
        return protection;
    }

    public boolean hasPin() {
        return pinObject != null;
    }

    /** The authPolicy of the sealed root object (compare with {@code tpm2_createpolicy}). */
    public PolicyDigest sealedPolicy() {
        try {
            return PolicyDigest.of(HashAlgorithm.SHA256, TpmtPublic.parse(root.publicArea()).authPolicy());
        } catch (MalformedStructureException e) {
            throw new IllegalStateException("the sealed root's public area was checked when loaded", e);
        }
    }

    /**
     * The digest an authority approves for the current state: {@code PolicyPCR} of the current values of
     * {@link Protection#pcrs()}. The authority signs {@code SHA256(approved policy || the keystore's policyRef)}.
     */
    public PolicyDigest currentStatePolicy() throws KeystoreException {
        try {
            return KeystorePolicy.approvedPolicy(tpm.pcrRead(protection.pcrs()));
        } catch (TpmException e) {
            throw tpmFailure("reading PCRs", e);
        }
    }

    /** How many distinct key fingerprints the keystore remembers. */
    public synchronized int fingerprintCount() {
        return fingerprints.size();
    }

    // ---------------------------------------------------------------------------------------------- phrase

    /** Longest phrase, in UTF-8 bytes (a TPM sealed data object holds at most 128). */
    public static final int MAX_PHRASE_BYTES = 64;

    /**
     * Seals the person's ring-screen phrase under the root's own policy: it unseals only where the root does — in the
     * approved measured state of the softphone (AUTHORIZED) or the sealed PCR values (PCR_ONLY) — so a program outside
     * the measured softphone cannot show it. Sealing needs no unseal: it can be done at set-up, before any approval.
     * Replaces an earlier phrase.
     *
     * @throws IllegalArgumentException if the phrase is empty, longer than {@link #MAX_PHRASE_BYTES} bytes of UTF-8,
     *                                  or holds control characters
     */
    public synchronized void sealPhrase(String phrase) throws KeystoreException {
        Objects.requireNonNull(phrase, "phrase");
        byte[] utf8 = phrase.getBytes(StandardCharsets.UTF_8);
        if (phrase.isBlank() || utf8.length > MAX_PHRASE_BYTES
                || phrase.codePoints().anyMatch(c -> Character.isISOControl(c) || c == 0x2028 || c == 0x2029)) {
            Arrays.fill(utf8, (byte) 0);
            throw new IllegalArgumentException("a phrase is 1.." + MAX_PHRASE_BYTES + " bytes of UTF-8 without control"
                    + " characters");
        }
        checkOpen();
        SecretBytes secret = SecretBytes.copyOf(utf8);
        Arrays.fill(utf8, (byte) 0);
        try {
            tpm.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
            TpmObjectBlob blob = tpm.seal(PARENT, secret, sealedPolicy().value());
            KeystoreDirectory.writeAtomically(directory.resolve(KeystoreDirectory.PHRASE), blob.toBytes());
            LOG.info("sealed the ring-screen phrase in {} under the keystore's policy", directory);
        } catch (TpmException e) {
            throw tpmFailure("sealing the phrase", e);
        } catch (IOException e) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "cannot write the phrase in " + directory
                    + ": " + e.getMessage(), e);
        } finally {
            secret.destroy();
        }
    }

    /**
     * The person's phrase, unsealed by the TPM only if {@code unlock} satisfies the root's policy (the same as for
     * keys); empty if none was sealed. The caller shows it only on the ring screen of the measured softphone.
     *
     * @throws KeystoreException {@code POLICY_FAIL}, {@code NOT_APPROVED}, {@code BAD_APPROVAL}, ... as for keys
     */
    public Optional<String> unsealPhrase(Unlock unlock) throws KeystoreException {
        Objects.requireNonNull(unlock, "unlock");
        checkUnlockFits(unlock);
        Path file = directory.resolve(KeystoreDirectory.PHRASE);
        TpmObjectBlob blob;
        try {
            if (!Files.exists(file)) {
                return Optional.empty();
            }
            blob = TpmObjectBlob.fromBytes(Files.readAllBytes(file));
        } catch (IOException | IllegalArgumentException e) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "the sealed phrase in " + directory
                    + " is unreadable: " + e.getMessage(), e);
        }
        synchronized (this) {
            checkOpen();
            SecretBytes secret;
            try {
                if (protection.mode() == Protection.Mode.AUTHORIZED) {
                    PolicyApproval approval = unlock.approval().orElseThrow();
                    checkApprovalAuthority(approval);
                    secret = tpm.unsealWithAuthorizedPolicy(PARENT, blob, protection.pcrs(), approval);
                } else {
                    secret = tpm.unsealWithPcrPolicy(PARENT, blob, protection.pcrs());
                }
            } catch (TpmException e) {
                throw tpmFailure("unsealing the phrase", e);
            } catch (IllegalArgumentException e) {
                throw refuse(new KeystoreException(KeystoreException.Reason.BAD_APPROVAL, "the approval is malformed: "
                        + e.getMessage(), e));
            }
            byte[] utf8 = secret.reveal();
            try {
                return Optional.of(new String(utf8, StandardCharsets.UTF_8));
            } finally {
                Arrays.fill(utf8, (byte) 0);
                secret.destroy();
            }
        }
    }

    // ---------------------------------------------------------------------------------------------- keys

    /** {@link #srtpKey(String, SrtpSuite, Unlock)} for an AUTHORIZED keystore without a PIN. */
    public SrtpKeys srtpKey(String callId, SrtpSuite suite, PolicyApproval approval) throws KeystoreException {
        return srtpKey(callId, suite, Unlock.approved(approval));
    }

    /** {@link #srtpKey(String, SrtpSuite, Unlock)} for a PCR_ONLY keystore without a PIN. */
    public SrtpKeys srtpKey(String callId, SrtpSuite suite) throws KeystoreException {
        return srtpKey(callId, suite, Unlock.measuredState());
    }

    /**
     * A fresh SRTP master key and salt for one call. Unseals the root (the TPM checks the policy), derives, records
     * the key's fingerprint durably, and only then returns it. The caller destroys the result after use.
     *
     * @throws KeystoreException {@code POLICY_FAIL}, {@code NOT_APPROVED}, {@code BAD_APPROVAL}, {@code PIN_REQUIRED},
     *                           {@code PIN_WRONG}, {@code LOCKED_OUT}, {@code TPM_UNAVAILABLE}, {@code TPM_ERROR},
     *                           {@code STORAGE}
     * @throws IllegalArgumentException if the unlock does not fit the keystore's mode (an approval for a PCR_ONLY
     *                                  keystore or none for an AUTHORIZED one, a PIN for a keystore without one)
     */
    public SrtpKeys srtpKey(String callId, SrtpSuite suite, Unlock unlock) throws KeystoreException {
        Objects.requireNonNull(callId, "callId");
        Objects.requireNonNull(suite, "suite");
        Objects.requireNonNull(unlock, "unlock");
        if (callId.isEmpty() || callId.length() > MAX_CALL_ID_LENGTH) {
            throw new IllegalArgumentException("a call id is 1.." + MAX_CALL_ID_LENGTH + " characters, got "
                    + callId.length());
        }
        checkUnlockFits(unlock);
        byte[] info = concat(SRTP_INFO, suite.name().getBytes(StandardCharsets.US_ASCII),
                callId.getBytes(StandardCharsets.UTF_8));
        synchronized (this) {
            checkOpen();
            SecretBytes ikm = releaseRoot(unlock);
            try {
                for (int attempt = 0; attempt < MAX_DERIVATION_ATTEMPTS; attempt++) {
                    byte[] salt = tpm.getRandom(32);
                    byte[] rootBytes = ikm.reveal();
                    byte[] okm = Hkdf.derive(salt, rootBytes, info, suite.keyLength() + suite.saltLength());
                    Arrays.fill(rootBytes, (byte) 0);
                    try {
                        byte[] fingerprint = HashAlgorithm.SHA256.digest(okm);
                        if (fingerprints.add(fingerprint)) {
                            SrtpKeys keys = split(suite, okm);
                            LOG.debug("issued an SRTP key ({}) for call {}", suite, callId);
                            return keys;
                        }
                        LOG.warn("derived SRTP key material that was seen before; deriving again with new"
                                + " randomness (attempt {})", attempt + 1);
                    } finally {
                        Arrays.fill(okm, (byte) 0);
                    }
                }
                throw refuse(new KeystoreException(KeystoreException.Reason.TPM_ERROR, "the TPM's random numbers gave "
                        + MAX_DERIVATION_ATTEMPTS + " already-seen keys in a row; its RNG is broken"));
            } catch (TpmException e) {
                throw tpmFailure("getting randomness for call " + callId, e);
            } catch (IOException e) {
                throw refuse(new KeystoreException(KeystoreException.Reason.STORAGE, "cannot record the key"
                        + " fingerprint in " + directory + " (no key issued): " + e.getMessage(), e));
            } finally {
                ikm.destroy();
            }
        }
    }

    /**
     * Checks key material offered by a peer (an SDES crypto attribute): refuses it if this keystore issued it or saw
     * it offered before (a replayed offer would make SRTP reuse keystream), else records it durably.
     *
     * @throws KeystoreException {@code SEEN_BEFORE} for a replay, {@code STORAGE} if it cannot be recorded
     */
    public void checkOffered(SecretBytes masterKey, SecretBytes masterSalt) throws KeystoreException {
        Objects.requireNonNull(masterKey, "masterKey");
        Objects.requireNonNull(masterSalt, "masterSalt");
        byte[] key = masterKey.reveal();
        byte[] salt = masterSalt.reveal();
        byte[] both = concat(key, salt);
        Arrays.fill(key, (byte) 0);
        Arrays.fill(salt, (byte) 0);
        byte[] fingerprint = HashAlgorithm.SHA256.digest(both);
        Arrays.fill(both, (byte) 0);
        checkOfferedFingerprint(fingerprint);
    }

    /**
     * {@link #checkOffered(SecretBytes, SecretBytes)} for a caller that has only the key material's fingerprint,
     * {@code SHA-256(masterKey || masterSalt)} — so the key itself need not travel (the broker's {@code OFFERED}).
     */
    public void checkOfferedFingerprint(byte[] fingerprint) throws KeystoreException {
        Objects.requireNonNull(fingerprint, "fingerprint");
        if (fingerprint.length != 32) {
            throw new IllegalArgumentException("a key fingerprint is SHA-256(masterKey || masterSalt), 32 bytes");
        }
        synchronized (this) {
            checkOpen();
            try {
                if (!fingerprints.add(fingerprint.clone())) {
                    throw refuse(new KeystoreException(KeystoreException.Reason.SEEN_BEFORE, "the offered SRTP key"
                            + " material was issued or offered before (a replayed offer); reject the offer"));
                }
            } catch (IOException e) {
                throw refuse(new KeystoreException(KeystoreException.Reason.STORAGE, "cannot record the offered key's"
                        + " fingerprint in " + directory + ": " + e.getMessage(), e));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------- identity key

    /**
     * The TLS identity key (TIK): an unrestricted ECC P-256 ECDSA-SHA256 signing key created in the TPM under the
     * storage root key and persisted at {@link PersistentHandle#TIK}, with the <em>same authPolicy as the sealed
     * root</em> — so it signs only when a key release would succeed: with a fresh approval of the current measured
     * state (AUTHORIZED) or in the sealed PCR state (PCR_ONLY). Created on first use; its public area is kept in the
     * keystore directory, and a different key at the handle is replaced.
     */
    public synchronized TpmtPublic identityKey() throws KeystoreException {
        checkOpen();
        Path file = directory.resolve(KeystoreDirectory.IDENTITY_KEY);
        try {
            Optional<TpmtPublic> persisted = tpm.readPublic(PersistentHandle.TIK);
            if (Files.exists(file) && persisted.isPresent()
                    && Arrays.equals(Files.readAllBytes(file), persisted.get().encoded())) {
                return persisted.get();
            }
            if (persisted.isPresent()) {
                LOG.warn("replacing the key at {} that is not this keystore's identity key", PersistentHandle.TIK);
                tpm.evict(PersistentHandle.TIK);
            }
            TpmObjectBlob tik = tpm.createSigningKey(PARENT, Optional.of(sealedPolicy().value()));
            tpm.persist(PARENT, tik, PersistentHandle.TIK);
            TpmtPublic pub = TpmtPublic.parse(tik.publicArea());
            KeystoreDirectory.writeAtomically(file, pub.encoded());
            LOG.info("created the TLS identity key at {} (name {})", PersistentHandle.TIK,
                    HexFormat.of().formatHex(pub.name()));
            return pub;
        } catch (TpmException e) {
            throw tpmFailure("creating the TLS identity key", e);
        } catch (MalformedStructureException e) {
            throw new KeystoreException(KeystoreException.Reason.TPM_ERROR, "the TPM returned an identity key we"
                    + " cannot parse: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "cannot record the identity key in "
                    + directory + ": " + e.getMessage(), e);
        }
    }

    /**
     * Signs a SHA-256 digest with the identity key inside the TPM under the same conditions as a key release (the
     * PIN, if any, guards key release only). Returns the {@code TPMT_SIGNATURE}.
     *
     * @throws KeystoreException as {@link #srtpKey(String, SrtpSuite, Unlock)}
     */
    public byte[] sign(byte[] digest, Unlock unlock) throws KeystoreException {
        Objects.requireNonNull(digest, "digest");
        Objects.requireNonNull(unlock, "unlock");
        if (digest.length != 32) {
            throw new IllegalArgumentException("the identity key signs SHA-256 digests (32 bytes), got "
                    + digest.length);
        }
        checkUnlockFits(unlock);
        synchronized (this) {
            checkOpen();
            try {
                if (protection.mode() == Protection.Mode.AUTHORIZED) {
                    PolicyApproval approval = unlock.approval().orElseThrow();
                    checkApprovalAuthority(approval);
                    try {
                        return tpm.signWithAuthorizedPolicy(PersistentHandle.TIK, digest, protection.pcrs(),
                                approval);
                    } catch (IllegalArgumentException e) {
                        throw refuse(new KeystoreException(KeystoreException.Reason.BAD_APPROVAL, "the approval is"
                                + " malformed: " + e.getMessage(), e));
                    }
                }
                return tpm.sign(PersistentHandle.TIK, digest, Optional.of(protection.pcrs()));
            } catch (TpmException e) {
                throw tpmFailure("signing with the identity key", e);
            }
        }
    }

    /**
     * {@code TPM2_Certify} of the identity key by {@code signingKey} (the AK) over {@code qualifyingData}: the
     * evidence a certificate authority needs that the key lives in this TPM (with its policy).
     */
    public synchronized io.tpmphone.tpm.TpmCertification certifyIdentityKey(PersistentHandle signingKey,
                                                                           byte[] qualifyingData)
            throws KeystoreException {
        checkOpen();
        try {
            return tpm.certify(PersistentHandle.TIK, signingKey, qualifyingData);
        } catch (TpmException e) {
            throw tpmFailure("certifying the identity key", e);
        }
    }

    /**
     * Ends a dictionary-attack lockout ({@code TPM2_DictionaryAttackLockReset}) with the TPM's lockout authorization
     * (empty on a fresh TPM). This resets the failure counter of the whole TPM, not only of this keystore's PIN.
     */
    public void resetLockout(SecretBytes lockoutAuth) throws KeystoreException {
        Objects.requireNonNull(lockoutAuth, "lockoutAuth");
        try {
            tpm.dictionaryAttackLockReset(lockoutAuth);
            LOG.info("dictionary-attack lockout reset with the lockout authorization");
        } catch (io.tpmphone.tpm.TpmResponseException e) {
            if (e.responseCodeName().equals("AUTH_FAIL") || e.responseCodeName().equals("BAD_AUTH")) {
                throw refuse(new KeystoreException(KeystoreException.Reason.LOCKOUT_AUTH_WRONG, "the lockout"
                        + " authorization is wrong (TPM_RC_" + e.responseCodeName() + "); the TPM now locks the"
                        + " lockout hierarchy for its lockout recovery time", e));
            }
            throw tpmFailure("resetting the lockout", e);
        } catch (TpmException e) {
            throw tpmFailure("resetting the lockout", e);
        }
    }

    /** {@link #resetLockout(SecretBytes)} with the empty lockout authorization of a fresh TPM. */
    public void resetLockout() throws KeystoreException {
        resetLockout(SecretBytes.copyOf(new byte[0]));
    }

    // ---------------------------------------------------------------------------------------------- internals

    private void checkUnlockFits(Unlock unlock) {
        if (protection.mode() == Protection.Mode.AUTHORIZED && unlock.approval().isEmpty()) {
            throw new IllegalArgumentException("this keystore is AUTHORIZED: releasing a key needs the authority's"
                    + " approval of the current state (Unlock.approved)");
        }
        if (protection.mode() == Protection.Mode.PCR_ONLY && unlock.approval().isPresent()) {
            throw new IllegalArgumentException("this keystore is PCR_ONLY: it takes no approval"
                    + " (Unlock.measuredState)");
        }
        if (pinObject == null && unlock.pin().isPresent()) {
            throw new IllegalArgumentException("this keystore has no PIN; do not pass one");
        }
        if (unlock.pin().isPresent() && (unlock.pin().get().length() < 1 || unlock.pin().get().length() > 32)) {
            throw new IllegalArgumentException("a PIN is 1..32 bytes of UTF-8, got " + unlock.pin().get().length());
        }
    }

    /** Unseals the root (and the PIN share) and returns the derivation key; the caller destroys it. */
    private SecretBytes releaseRoot(Unlock unlock) throws KeystoreException {
        if (pinObject != null && unlock.pin().isEmpty()) {
            throw refuse(new KeystoreException(KeystoreException.Reason.PIN_REQUIRED, "this keystore needs the user's"
                    + " PIN; ask the user for it"));
        }
        SecretBytes rootSecret;
        try {
            if (protection.mode() == Protection.Mode.AUTHORIZED) {
                PolicyApproval approval = unlock.approval().orElseThrow();
                checkApprovalAuthority(approval);
                try {
                    rootSecret = tpm.unsealWithAuthorizedPolicy(PARENT, root, protection.pcrs(), approval);
                } catch (IllegalArgumentException e) {
                    throw refuse(new KeystoreException(KeystoreException.Reason.BAD_APPROVAL, "the approval is"
                            + " malformed: " + e.getMessage(), e));
                }
            } else {
                rootSecret = tpm.unsealWithPcrPolicy(PARENT, root, protection.pcrs());
            }
        } catch (TpmException e) {
            throw tpmFailure("unsealing the root secret", e);
        }
        if (pinObject == null) {
            return rootSecret;
        }
        try {
            SecretBytes share = tpm.unsealWithPassword(PARENT, pinObject, unlock.pin().orElseThrow());
            byte[] r = rootSecret.reveal();
            byte[] s = share.reveal();
            byte[] both = concat(r, s);
            byte[] prk = Hkdf.extract(PIN_SALT, both);
            Arrays.fill(r, (byte) 0);
            Arrays.fill(s, (byte) 0);
            Arrays.fill(both, (byte) 0);
            share.destroy();
            try {
                return SecretBytes.copyOf(prk);
            } finally {
                Arrays.fill(prk, (byte) 0);
            }
        } catch (TpmException e) {
            throw tpmFailure("opening the PIN share", e);
        } finally {
            rootSecret.destroy();
        }
    }

    private void checkApprovalAuthority(PolicyApproval approval) throws KeystoreException {
        TpmtPublic authority = protection.authority().orElseThrow();
        if (!Arrays.equals(approval.authorityPublic(), authority.encoded())) {
            throw refuse(new KeystoreException(KeystoreException.Reason.BAD_APPROVAL, "the approval is signed by"
                    + " another key than the keystore's policy authority (name "
                    + HexFormat.of().formatHex(authority.name()) + "); ask that authority for an approval"));
        }
        if (!Arrays.equals(approval.policyRef(), protection.approvalPolicyRef().orElseThrow())) {
            throw refuse(new KeystoreException(KeystoreException.Reason.BAD_APPROVAL, "the approval's policyRef is not"
                    + " this keystore's (an approval for another host, or not for a keystore)"));
        }
    }

    private KeystoreException tpmFailure(String what, TpmException e) {
        return tpmFailure(directory, protection.pcrs(), what, e);
    }

    private static KeystoreException tpmFailure(Path directory, PcrSelection pcrs, String what, TpmException e) {
        if (e instanceof TpmTransportException) {
            return refuse(directory, new KeystoreException(KeystoreException.Reason.TPM_UNAVAILABLE, what + ": the TPM is"
                    + " unreachable (" + e.getMessage() + "); check that it runs and retry", e));
        }
        if (e instanceof TpmResponseException r) {
            String rc = r.responseCodeName();
            KeystoreException.Reason reason;
            String next;
            switch (rc) {
                case "POLICY_FAIL" -> {
                    reason = KeystoreException.Reason.POLICY_FAIL;
                    next = "the PCRs " + pcrs + " are not in the sealed/approved state (another"
                            + " measurement, or the softphone ended); relaunch the approved softphone";
                }
                case "VALUE" -> {
                    reason = KeystoreException.Reason.NOT_APPROVED;
                    next = "the approval is for another PCR state than the current one; get an approval of the"
                            + " current state";
                }
                case "POLICY" -> {
                    reason = r.command().equals("PolicyCounterTimer") ? KeystoreException.Reason.APPROVAL_EXPIRED
                            : KeystoreException.Reason.TPM_ERROR;
                    next = reason == KeystoreException.Reason.APPROVAL_EXPIRED
                            ? "the approval expired (the TPM clock passed its limit); re-attest for a fresh one"
                            : "the TPM refused the policy";
                }
                case "SIGNATURE" -> {
                    reason = KeystoreException.Reason.BAD_APPROVAL;
                    next = "the approval's signature is not the policy authority's";
                }
                case "AUTH_FAIL", "BAD_AUTH" -> {
                    reason = KeystoreException.Reason.PIN_WRONG;
                    next = "wrong PIN; the TPM counted a failed try";
                }
                case "LOCKOUT" -> {
                    reason = KeystoreException.Reason.LOCKED_OUT;
                    next = "the TPM is locked out after too many wrong PINs; wait for the recovery time or reset it"
                            + " with the lockout authorization (docs/keystore.md)";
                }
                default -> {
                    reason = KeystoreException.Reason.TPM_ERROR;
                    next = "the TPM refused";
                }
            }
            return refuse(directory, new KeystoreException(reason, what + ": " + next + " (TPM2_" + r.command() + ": TPM_RC_" + rc
                    + ")", rc, e));
        }
        return refuse(directory, new KeystoreException(KeystoreException.Reason.TPM_ERROR, what + ": " + e.getMessage(), e));
    }

    // The audit trail of refusals: reason and TPM code only.
    private KeystoreException refuse(KeystoreException e) {
        return refuse(directory, e);
    }

    private static KeystoreException refuse(Path directory, KeystoreException e) {
        LOG.warn("keystore {} refused: {} {}", directory, e.reason(), e.tpmResponseCode().orElse(""));
        return e;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the keystore in " + directory + " is closed");
        }
    }

    private static SrtpKeys split(SrtpSuite suite, byte[] okm) {
        byte[] key = Arrays.copyOfRange(okm, 0, suite.keyLength());
        byte[] salt = Arrays.copyOfRange(okm, suite.keyLength(), suite.keyLength() + suite.saltLength());
        try {
            return new SrtpKeys(suite, SecretBytes.copyOf(key), SecretBytes.copyOf(salt));
        } finally {
            Arrays.fill(key, (byte) 0);
            Arrays.fill(salt, (byte) 0);
        }
    }

    private static SecretBytes freshSecret(TpmClient tpm) throws TpmException {
        byte[] fromTpm = tpm.getRandom(ROOT_LENGTH);
        byte[] local = new byte[ROOT_LENGTH];
        new SecureRandom().nextBytes(local);
        for (int i = 0; i < ROOT_LENGTH; i++) {
            fromTpm[i] ^= local[i];
        }
        try {
            return SecretBytes.copyOf(fromTpm);
        } finally {
            Arrays.fill(fromTpm, (byte) 0);
            Arrays.fill(local, (byte) 0);
        }
    }

    private static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        byte[] out = new byte[n];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    @Override
    public String toString() {
        return "SealedKeystore[" + protection + ", " + directory + (pinObject != null ? ", PIN]" : "]");
    }
}
