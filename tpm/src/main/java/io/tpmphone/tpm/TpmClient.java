package io.tpmphone.tpm;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.PolicyDigest;
import io.tpmphone.attestation.PolicyStep;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.tpm.internal.ResponseParameters;
import io.tpmphone.tpm.internal.Templates;
import io.tpmphone.tpm.internal.StockTcpTransport;
import io.tpmphone.tpm.internal.TpmTransport;
import io.tpmphone.tpm.internal.TssDevice;
import java.io.ByteArrayOutputStream;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import tss.Tpm;
import tss.tpm.CreatePrimaryResponse;
import tss.tpm.CreateResponse;
import tss.tpm.GetCapabilityResponse;
import tss.tpm.NV_ReadPublicResponse;
import tss.tpm.PCR_ReadResponse;
import tss.tpm.StartAuthSessionResponse;
import tss.tpm.TPM2B_DIGEST;
import tss.tpm.TPM2B_PRIVATE;
import tss.tpm.TPML_HANDLE;
import tss.tpm.TPML_TAGGED_TPM_PROPERTY;
import tss.tpm.TPMS_ID_OBJECT;
import tss.tpm.TPMS_NULL_SIG_SCHEME;
import tss.tpm.TPM_EO;
import tss.tpm.TPMS_PCR_SELECTION;
import tss.tpm.TPMS_SENSITIVE_CREATE;
import tss.tpm.TPMS_TAGGED_PROPERTY;
import tss.tpm.TPMT_HA;
import tss.tpm.TPMT_PUBLIC;
import tss.tpm.TPMT_SIGNATURE;
import tss.tpm.TPMT_SYM_DEF;
import tss.tpm.TPMT_TK_HASHCHECK;
import tss.tpm.TPMT_TK_VERIFIED;
import tss.tpm.TPM_ALG_ID;
import tss.tpm.TPM_CAP;
import tss.tpm.TPM_HANDLE;
import tss.tpm.TPM_PT;
import tss.tpm.TPM_RC;
import tss.tpm.TPM_RH;
import tss.tpm.TPM_SE;

/**
 * The one way into a TPM. Every operation is serialized through one lock, so a client may be shared by many threads;
 * it owns one connection (swtpm and a TPM without resource manager accept only one client at a time). Every
 * transient object and session an operation loads is flushed before it returns, also when it fails.
 *
 * <p>Errors are typed: {@link TpmResponseException} carries the TPM response-code name ({@code POLICY_FAIL}, ...),
 * {@link TpmTransportException} a connection failure or timeout. TSS.Java never prints and never leaks its own
 * exceptions through this API.
 *
 * <p>Not provided on purpose: HMAC sessions and parameter encryption (TSS.Java has neither), so unsealed data crosses
 * the transport in clear; use it over a local device or loopback only.
 */
public final class TpmClient implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TpmClient.class);

    private static final int HT_TRANSIENT = 0x80000000;
    private static final int HT_PERSISTENT = 0x81000000;
    private static final int HT_LOADED_SESSION = 0x02000000;
    private static final int HT_POLICY_SESSION = 0x03000000;
    private static final int NV_CHUNK = 512;
    /** {@code TPMA_PERMANENT.inLockout} (TPM 2.0 Part 2 §8.6). */
    private static final int TPMA_PERMANENT_IN_LOCKOUT = 1 << 9;

    private final TpmUri uri;
    private final TssDevice device;
    private final Tpm tpm;
    private final ReentrantLock lock = new ReentrantLock();
    /**
     * VerifySignature tickets of recent approvals (guarded by {@link #lock}): a ticket is the TPM's HMAC under the
     * owner hierarchy's proof, valid until TPM2_Clear, so a repeated release skips LoadExternal, the ECDSA
     * verification and the flush. PolicyAuthorize still checks the ticket and the policy every time.
     */
    private final Map<String, TPMT_TK_VERIFIED> tickets = new LinkedHashMap<>(16, 0.75f, true) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, TPMT_TK_VERIFIED> eldest) {
            return size() > 8;
        }
    };
    private boolean closed;

    private TpmClient(TpmUri uri, TpmTransport transport) {
        this.uri = uri;
        this.device = new TssDevice(transport);
        this.tpm = new Tpm();
        this.tpm._setDevice(device);
    }

    /**
     * Opens a client and checks that the TPM answers.
     *
     * @throws TpmTransportException if the TPM cannot be reached within the URI's timeout
     */
    public static TpmClient open(TpmUri uri) throws TpmException {
        Objects.requireNonNull(uri, "uri");
        return open(uri, TpmTransport.open(uri));
    }

    /**
     * A client whose commands travel over TSS.Java's own {@code TpmDeviceTcp} to the swtpm data port {@code host:port}
     * (it also opens the control port {@code port + 1}, sending nothing there) instead of our transport: no timeouts
     * and about 100x slower per command. It exists so that {@code tpmphone bench tpm} can run the same command
     * sequences over both devices; use {@link #open(TpmUri)} for anything else.
     *
     * @throws TpmTransportException if the swtpm cannot be reached
     */
    public static TpmClient openOverStockTcpDevice(String host, int port) throws TpmException {
        Objects.requireNonNull(host, "host");
        return open(TpmUri.swtpm(host, port), new StockTcpTransport(host, port));
    }

    /** A client over a given transport. */
    static TpmClient open(TpmUri uri, TpmTransport transport) throws TpmException {
        TpmClient client = new TpmClient(uri, transport);
        try {
            client.getRandom(1);
        } catch (TpmException | RuntimeException e) {
            client.close();
            throw e;
        }
        return client;
    }

    public TpmUri uri() {
        return uri;
    }

    // ---------------------------------------------------------------------------------------------- basics

    /** {@code TPM2_GetRandom}: {@code count} bytes from the TPM's RNG (asks repeatedly if the TPM gives fewer). */
    public byte[] getRandom(int count) throws TpmException {
        if (count < 0 || count > 1 << 16) {
            throw new IllegalArgumentException("random byte count must be 0..65536, got " + count);
        }
        return call("GetRandom", scope -> {
            ByteArrayOutputStream out = new ByteArrayOutputStream(count);
            while (out.size() < count) {
                byte[] chunk = run("GetRandom", () -> tpm.GetRandom(Math.min(32, count - out.size())));
                if (chunk.length == 0) {
                    throw new TpmTransportException("TPM2_GetRandom returned no bytes");
                }
                out.write(chunk, 0, chunk.length);
            }
            return out.toByteArray();
        });
    }

    /**
     * {@code TPM2_ReadClock}: the TPM's clock and its reset/restart counters, un-obfuscated. A changed reset or restart
     * count means the TPM rebooted and its PCRs were reset.
     */
    public ClockInfo readClock() throws TpmException {
        return call("ReadClock", scope -> {
            tss.tpm.TPMS_TIME_INFO t = run("ReadClock", () -> tpm.ReadClock());
            return new ClockInfo(t.clockInfo.clock, Integer.toUnsignedLong(t.clockInfo.resetCount),
                    Integer.toUnsignedLong(t.clockInfo.restartCount), t.clockInfo.safe != 0);
        });
    }

    /** Fixed properties: manufacturer, firmware, spec revision. */
    public TpmInfo info() throws TpmException {
        return call("GetCapability", scope -> {
            Map<Integer, Integer> p = new TreeMap<>();
            GetCapabilityResponse r = run("GetCapability",
                    () -> tpm.GetCapability(TPM_CAP.TPM_PROPERTIES, TPM_PT.PT_FIXED.toInt(), 64));
            for (TPMS_TAGGED_PROPERTY t : ((TPML_TAGGED_TPM_PROPERTY) r.capabilityData).tpmProperty) {
                p.put(t.property.toInt(), t.value);
            }
            int base = TPM_PT.PT_FIXED.toInt();
            String family = ascii(p.getOrDefault(base, 0));
            int level = p.getOrDefault(base + 1, 0);
            double revision = p.getOrDefault(base + 2, 0) / 100.0;
            String manufacturer = ascii(p.getOrDefault(base + 5, 0));
            String vendor = ascii(p.getOrDefault(base + 6, 0)) + ascii(p.getOrDefault(base + 7, 0))
                    + ascii(p.getOrDefault(base + 8, 0)) + ascii(p.getOrDefault(base + 9, 0));
            int fw1 = p.getOrDefault(base + 11, 0);
            int fw2 = p.getOrDefault(base + 12, 0);
            String firmware = String.format(Locale.ROOT, "%d.%d.%d.%d", fw1 >>> 16, fw1 & 0xffff, fw2 >>> 16,
                    fw2 & 0xffff);
            return new TpmInfo(family, level, revision, manufacturer, vendor, firmware);
        });
    }

    /** Handles of one type currently held by the TPM: transient objects, sessions or persistent objects. */
    public List<Integer> handles(HandleType type) throws TpmException {
        Objects.requireNonNull(type, "type");
        return call("GetCapability", scope -> {
            List<Integer> result = new ArrayList<>();
            int start = type.first;
            while (true) {
                final int from = start;
                GetCapabilityResponse r = run("GetCapability", () -> tpm.GetCapability(TPM_CAP.HANDLES, from, 64));
                TPM_HANDLE[] hs = ((TPML_HANDLE) r.capabilityData).handle;
                boolean beyond = false;
                for (TPM_HANDLE h : hs) {
                    if (type.includes(h.handle)) {
                        result.add(h.handle);
                    } else {
                        beyond = true;
                    }
                }
                if (r.moreData == 0 || hs.length == 0 || beyond) {
                    return result;
                }
                start = hs[hs.length - 1].handle + 1;
            }
        });
    }

    /**
     * Flushes every transient object and session the TPM holds, and returns their handles. Without a resource manager
     * (swtpm, {@code /dev/tpm0}) what a process had loaded when it died stays loaded until the TPM restarts, and three
     * leftovers fill swtpm's object slots ({@code TPM_RC_OBJECT_MEMORY} for every later load). Only for the TPM's sole
     * owner, when it starts: every operation of this client flushes what it loads, so nothing of its own is lost.
     *
     * @throws TpmException if the TPM cannot list or flush them
     */
    public List<Integer> flushLeftovers() throws TpmException {
        lock.lock();
        try {
            List<Integer> leftovers = new ArrayList<>(handles(HandleType.TRANSIENT));
            leftovers.addAll(handles(HandleType.LOADED_SESSION));
            for (int handle : leftovers) {
                call("FlushContext", scope -> {
                    run("FlushContext", () -> tpm.FlushContext(new TPM_HANDLE(handle)));
                    return null;
                });
            }
            return leftovers;
        } finally {
            lock.unlock();
        }
    }

    /**
     * The handle types {@link #handles} can list. Sessions are reported with their own handles: {@code 0x02xxxxxx}
     * for HMAC and {@code 0x03xxxxxx} for policy sessions, whether loaded or saved (context-saved, e.g. by
     * tpm2-tools between invocations).
     */
    public enum HandleType {
        TRANSIENT(HT_TRANSIENT), PERSISTENT(HT_PERSISTENT), LOADED_SESSION(HT_LOADED_SESSION),
        SAVED_SESSION(HT_POLICY_SESSION);

        private final int first;

        HandleType(int first) {
            this.first = first;
        }

        boolean includes(int handle) {
            int type = handle >>> 24;
            return this == TRANSIENT || this == PERSISTENT ? type == first >>> 24 : type == 0x02 || type == 0x03;
        }
    }

    // ---------------------------------------------------------------------------------------------- PCRs

    /** {@code TPM2_PCR_Read} of any selection (several reads when the TPM returns at most 8 digests each). */
    public PcrValues pcrRead(PcrSelection selection) throws TpmException {
        Objects.requireNonNull(selection, "selection");
        return call("PCR_Read", scope -> readPcrs(selection));
    }

    /** {@code TPM2_PCR_Extend} of the SHA-256 bank: {@code PCR := SHA256(PCR || digest)}. */
    public void pcrExtend(int pcr, byte[] sha256Digest) throws TpmException {
        if (pcr < 0 || pcr > 23) {
            throw new IllegalArgumentException("PCR index must be 0..23, got " + pcr);
        }
        if (sha256Digest.length != 32) {
            throw new IllegalArgumentException("a SHA-256 digest has 32 bytes, got " + sha256Digest.length);
        }
        byte[] digest = sha256Digest.clone();
        call("PCR_Extend", scope -> {
            run("PCR_Extend", () -> tpm.PCR_Extend(TPM_HANDLE.pcr(pcr),
                    new TPMT_HA[] {new TPMT_HA(TPM_ALG_ID.SHA256, digest)}));
            return null;
        });
    }

    // ---------------------------------------------------------------------------------------------- keys

    /**
     * The endorsement key of the given type at its persistent handle: created from the TCG template and persisted if
     * the handle is empty, checked against the template if it is not.
     *
     * @return the EK's public area
     */
    public TpmtPublic ensureEndorsementKey(EkType type) throws TpmException {
        Objects.requireNonNull(type, "type");
        return ensurePrimary("endorsement key " + type, TPM_HANDLE.from(TPM_RH.ENDORSEMENT), Templates.ek(type),
                type.defaultHandle());
    }

    /** The storage root key (ECC P-256 or RSA-2048, TCG SRK template) at its persistent handle, created if absent. */
    public TpmtPublic ensureStorageRootKey(StorageKeyType type) throws TpmException {
        Objects.requireNonNull(type, "type");
        PersistentHandle handle = type == StorageKeyType.ECC_P256 ? PersistentHandle.SRK_ECC : PersistentHandle.SRK_RSA;
        return ensurePrimary("storage root key " + type, TPM_HANDLE.from(TPM_RH.OWNER), Templates.srk(type), handle);
    }

    /** Storage primary key types. */
    public enum StorageKeyType { ECC_P256, RSA_2048 }

    private TpmtPublic ensurePrimary(String what, TPM_HANDLE hierarchy, TPMT_PUBLIC template, PersistentHandle handle)
            throws TpmException {
        return call("CreatePrimary", scope -> {
            Optional<byte[]> existing = readPublicRaw(handle);
            if (existing.isPresent()) {
                if (!Templates.matches(template, tssPublic(existing.get()))) {
                    throw new TpmException(what + ": persistent handle " + handle + " holds an object made from"
                            + " another template; evict it first (tpm2_evictcontrol -C o -c " + handle + ")");
                }
                return parsePublic(existing.get());
            }
            CreatePrimaryResponse created = run("CreatePrimary", () -> tpm.CreatePrimary(hierarchy,
                    new TPMS_SENSITIVE_CREATE(new byte[0], new byte[0]), template, new byte[0],
                    new TPMS_PCR_SELECTION[0]));
            scope.track(created.handle);
            byte[] pub = ResponseParameters.of(device.lastResponse(), 1).tpm2b();
            run("EvictControl", () -> tpm.EvictControl(TPM_HANDLE.from(TPM_RH.OWNER), created.handle,
                    TPM_HANDLE.persistent(handle.value() & 0x00ffffff)));
            LOG.info("created {} at {}", what, handle);
            return parsePublic(pub);
        });
    }

    /** The public area of a persistent object, if the handle is occupied. */
    public Optional<TpmtPublic> readPublic(PersistentHandle handle) throws TpmException {
        Objects.requireNonNull(handle, "handle");
        return call("ReadPublic", scope -> {
            Optional<byte[]> raw = readPublicRaw(handle);
            return raw.isEmpty() ? Optional.<TpmtPublic>empty() : Optional.of(parsePublic(raw.get()));
        });
    }

    /**
     * Creates the attestation key: a restricted ECC P-256 ECDSA-SHA256 signing key (fixedTPM, fixedParent,
     * sensitiveDataOrigin, userWithAuth, noDA) under the endorsement key, so that it lives in the endorsement
     * hierarchy (its TPMS_ATTEST clock fields are not obfuscated), and persists it at {@code akHandle}.
     *
     * @throws TpmException if {@code akHandle} is occupied (evict it first) or the EK is missing
     */
    public TpmtPublic createAttestationKey(PersistentHandle ek, PersistentHandle akHandle) throws TpmException {
        Objects.requireNonNull(ek, "ek");
        Objects.requireNonNull(akHandle, "akHandle");
        return call("Create", scope -> {
            requireFree(akHandle, "attestation key");
            TPM_HANDLE parent = persistent(ek);
            TPM_HANDLE s1 = endorsementPolicySession(scope);
            CreateResponse created = run("Create", () -> tpm._withSession(s1).Create(parent,
                    new TPMS_SENSITIVE_CREATE(new byte[0], new byte[0]), Templates.attestationKey(), new byte[0],
                    new TPMS_PCR_SELECTION[0]));
            TpmObjectBlob ak = createdObject();
            TPM_HANDLE s2 = endorsementPolicySession(scope);
            TPM_HANDLE loaded = run("Load", () -> tpm._withSession(s2).Load(parent, created.outPrivate,
                    created.outPublic));
            scope.track(loaded);
            evictInto(loaded, akHandle);
            return parsePublic(ak.publicArea());
        });
    }

    /**
     * Creates an unrestricted ECC P-256 ECDSA-SHA256 signing key (the TLS identity key) under a storage key. With a
     * policy digest the key signs only in a session that satisfies that policy (userWithAuth is then clear).
     */
    public TpmObjectBlob createSigningKey(PersistentHandle parent, Optional<byte[]> authPolicy) throws TpmException {
        Objects.requireNonNull(parent, "parent");
        byte[] policy = authPolicy.map(byte[]::clone).orElse(new byte[0]);
        return call("Create", scope -> {
            run("Create", () -> tpm.Create(persistent(parent), new TPMS_SENSITIVE_CREATE(new byte[0], new byte[0]),
                    Templates.signingKey(policy), new byte[0], new TPMS_PCR_SELECTION[0]));
            return createdObject();
        });
    }

    /** Loads an object created under {@code parent} and persists it at {@code handle}. */
    public void persist(PersistentHandle parent, TpmObjectBlob object, PersistentHandle handle) throws TpmException {
        Objects.requireNonNull(object, "object");
        call("EvictControl", scope -> {
            requireFree(handle, "object");
            evictInto(load(scope, parent, object), handle);
            return null;
        });
    }

    /** Removes a persistent object; does nothing if the handle is empty. */
    public void evict(PersistentHandle handle) throws TpmException {
        Objects.requireNonNull(handle, "handle");
        call("EvictControl", scope -> {
            if (readPublicRaw(handle).isPresent()) {
                TPM_HANDLE h = persistent(handle);
                run("EvictControl", () -> tpm.EvictControl(TPM_HANDLE.from(TPM_RH.OWNER), h, h));
            }
            return null;
        });
    }

    /**
     * The EK certificate (DER) from its TCG NV index, if the TPM has one. Read with owner authorization in chunks.
     */
    public Optional<byte[]> readEndorsementCertificate(EkType type) throws TpmException {
        Objects.requireNonNull(type, "type");
        return call("NV_Read", scope -> {
            TPM_HANDLE index = TPM_HANDLE.NV(type.certificateNvIndex() & 0x00ffffff);
            NV_ReadPublicResponse pub = tpm._allowErrors().NV_ReadPublic(index);
            TPM_RC rc = tpm._getLastResponseCode();
            if (isHandleError(rc)) {
                return Optional.<byte[]>empty();
            }
            check("NV_ReadPublic");
            int size = pub.nvPublic.dataSize;
            ByteArrayOutputStream out = new ByteArrayOutputStream(size);
            for (int offset = 0; offset < size; offset += NV_CHUNK) {
                final int at = offset;
                byte[] chunk = run("NV_Read", () -> tpm.NV_Read(TPM_HANDLE.from(TPM_RH.OWNER), index,
                        Math.min(NV_CHUNK, size - at), at));
                out.write(chunk, 0, chunk.length);
            }
            return Optional.of(out.toByteArray());
        });
    }

    // ---------------------------------------------------------------------------------------------- attestation

    /**
     * {@code TPM2_Quote} of {@code selection} with the key at {@code signingKey} (its own scheme), with
     * {@code qualifyingData} (a nonce or a binder, at most 64 bytes) in {@code extraData}; then reads the quoted PCR
     * values under the same lock.
     */
    public TpmQuote quote(PersistentHandle signingKey, PcrSelection selection, byte[] qualifyingData)
            throws TpmException {
        Objects.requireNonNull(signingKey, "signingKey");
        Objects.requireNonNull(selection, "selection");
        byte[] data = checkQualifyingData(qualifyingData);
        return call("Quote", scope -> {
            run("Quote", () -> tpm.Quote(persistent(signingKey), data, new TPMS_NULL_SIG_SCHEME(),
                    new TPMS_PCR_SELECTION[] {selection(selection)}));
            ResponseParameters out = ResponseParameters.of(device.lastResponse(), 0);
            byte[] attest = out.tpm2b();
            byte[] signature = out.rest();
            return new TpmQuote(attest, signature, readPcrs(selection));
        });
    }

    /** {@code TPM2_Certify}: {@code signingKey} attests that the object at {@code object} is loaded in this TPM. */
    public TpmCertification certify(PersistentHandle object, PersistentHandle signingKey, byte[] qualifyingData)
            throws TpmException {
        Objects.requireNonNull(object, "object");
        Objects.requireNonNull(signingKey, "signingKey");
        byte[] data = checkQualifyingData(qualifyingData);
        return call("Certify", scope -> {
            run("Certify", () -> tpm.Certify(persistent(object), persistent(signingKey), data,
                    new TPMS_NULL_SIG_SCHEME()));
            ResponseParameters out = ResponseParameters.of(device.lastResponse(), 0);
            byte[] attest = out.tpm2b();
            return new TpmCertification(attest, out.rest());
        });
    }

    /**
     * {@code TPM2_Sign} of a digest with an unrestricted signing key (its own scheme); returns the
     * {@code TPMT_SIGNATURE} bytes. With {@code pcrPolicy}, authorizes with a PolicyPCR session over that selection.
     */
    public byte[] sign(PersistentHandle key, byte[] digest, Optional<PcrSelection> pcrPolicy) throws TpmException {
        Objects.requireNonNull(key, "key");
        byte[] d = digest.clone();
        return call("Sign", scope -> {
            if (pcrPolicy.isPresent()) {
                tpm._withSession(pcrPolicySession(scope, pcrPolicy.get()));
            }
            run("Sign", () -> tpm.Sign(persistent(key), d, new TPMS_NULL_SIG_SCHEME(),
                    new TPMT_TK_HASHCHECK(TPM_HANDLE.from(TPM_RH.NULL), new byte[0])));
            return ResponseParameters.of(device.lastResponse(), 0).rest();
        });
    }

    /** TPM2_Hash takes at most MAX_DIGEST_BUFFER bytes; 1024 is what every TPM we know offers. */
    private static final int MAX_HASHED_MESSAGE = 1024;
    private static final byte[] TPM_GENERATED = {(byte) 0xff, 0x54, 0x43, 0x47};

    /**
     * Signs {@code message} with a <em>restricted</em> signing key (an AK), for proofs of possession such as an
     * authenticated nonce request: {@code TPM2_Hash} of the message with the key's scheme hash in the owner
     * hierarchy yields the digest and a {@code TPMT_TK_HASHCHECK} ticket, which {@code TPM2_Sign} requires of a
     * restricted key. The TPM issues no ticket for data that starts with {@code TPM_GENERATED_VALUE}, so such a
     * signature can never pass for a quote; this method refuses such a message up front. Loads nothing (the key
     * is persistent), so nothing is left to flush. Serialized with every other operation.
     *
     * @param message at most 1024 bytes, not starting with {@code 0xff544347}
     * @return the {@code TPMT_SIGNATURE} bytes (the key's own scheme), over {@code H(message)}
     * @throws IllegalArgumentException if the message is too long or starts with {@code TPM_GENERATED_VALUE}
     */
    public byte[] signWithRestrictedKey(PersistentHandle key, byte[] message) throws TpmException {
        Objects.requireNonNull(key, "key");
        byte[] m = message.clone();
        if (m.length > MAX_HASHED_MESSAGE) {
            throw new IllegalArgumentException("a message signed through TPM2_Hash is at most " + MAX_HASHED_MESSAGE
                    + " bytes, got " + m.length);
        }
        if (m.length >= 4 && Arrays.equals(m, 0, 4, TPM_GENERATED, 0, 4)) {
            throw new IllegalArgumentException("the message starts with TPM_GENERATED_VALUE 0xff544347: a"
                    + " restricted key signs such data only as TPM-made attestations (use quote or certify)");
        }
        return call("Sign", scope -> {
            TpmtPublic pub = parsePublic(readPublicRaw(key).orElseThrow(() -> new TpmException(
                    "no key at persistent handle " + key + "; create and persist the attestation key first")));
            HashAlgorithm hash = pub.schemeHash().orElse(HashAlgorithm.SHA256);
            TPM_ALG_ID alg = TPM_ALG_ID.fromInt(hash.tpmId());
            tss.tpm.HashResponse hashed = run("Hash", () -> tpm.Hash(m, alg, TPM_HANDLE.from(TPM_RH.OWNER)));
            if (hashed.validation == null || hashed.validation.digest == null
                    || hashed.validation.digest.length == 0) {
                throw new TpmException("TPM2_Hash returned no hashcheck ticket; the owner hierarchy may be disabled");
            }
            run("Sign", () -> tpm.Sign(persistent(key), hashed.outHash, new TPMS_NULL_SIG_SCHEME(),
                    hashed.validation));
            return ResponseParameters.of(device.lastResponse(), 0).rest();
        });
    }

    /**
     * {@code TPM2_ActivateCredential}: releases the credential that {@code MakeCredential} bound to the EK at
     * {@code ek} and to the name of the key at {@code ak}. Only the TPM holding that EK can do it.
     *
     * @param idObject        the TPM2B_ID_OBJECT contents: TPM2B integrityHMAC followed by encIdentity
     * @param encryptedSecret the TPM2B_ENCRYPTED_SECRET contents (the OAEP-wrapped or ECDH seed)
     */
    public SecretBytes activateCredential(PersistentHandle ak, PersistentHandle ek, byte[] integrityHmac,
                                          byte[] encIdentity, byte[] encryptedSecret) throws TpmException {
        Objects.requireNonNull(ak, "ak");
        Objects.requireNonNull(ek, "ek");
        TPMS_ID_OBJECT id = new TPMS_ID_OBJECT(integrityHmac.clone(), encIdentity.clone());
        byte[] secret = encryptedSecret.clone();
        return call("ActivateCredential", scope -> {
            TPM_HANDLE ekSession = endorsementPolicySession(scope);
            byte[] credential = run("ActivateCredential", () -> tpm._withSessions(TPM_HANDLE.pwSession(new byte[0]),
                    ekSession).ActivateCredential(persistent(ak), persistent(ek), id, secret));
            try {
                return SecretBytes.copyOf(credential);
            } finally {
                Arrays.fill(credential, (byte) 0);
                device.wipeLastResponse();
            }
        });
    }

    // ---------------------------------------------------------------------------------------------- sealing

    /**
     * Seals {@code secret} (at most 128 bytes) under {@code parent} as a keyed-hash data object whose only
     * authorization is {@code authPolicy} (userWithAuth clear, noDA set).
     */
    public TpmObjectBlob seal(PersistentHandle parent, SecretBytes secret, byte[] authPolicy) throws TpmException {
        Objects.requireNonNull(parent, "parent");
        Objects.requireNonNull(secret, "secret");
        if (authPolicy.length != 32) {
            throw new IllegalArgumentException("a SHA-256 policy digest has 32 bytes, got " + authPolicy.length);
        }
        byte[] policy = authPolicy.clone();
        return call("Create", scope -> {
            byte[] data = secret.reveal();
            try {
                run("Create", () -> tpm.Create(persistent(parent), new TPMS_SENSITIVE_CREATE(new byte[0], data),
                        Templates.sealedData(policy), new byte[0], new TPMS_PCR_SELECTION[0]));
            } finally {
                Arrays.fill(data, (byte) 0);
            }
            return createdObject();
        });
    }

    /** Unseals an object sealed to {@code PolicyPCR(selection)} of the current PCR values. */
    public SecretBytes unsealWithPcrPolicy(PersistentHandle parent, TpmObjectBlob sealed, PcrSelection selection)
            throws TpmException {
        Objects.requireNonNull(sealed, "sealed");
        Objects.requireNonNull(selection, "selection");
        return call("Unseal", scope -> {
            TPM_HANDLE object = load(scope, parent, sealed);
            TPM_HANDLE session = pcrPolicySession(scope, selection);
            return unseal(object, session);
        });
    }

    /**
     * Unseals an object sealed to {@code PolicyAuthorize(authority)}: checks the authority's approval in the TPM
     * ({@code TPM2_VerifySignature}), runs {@code PolicyPCR(selection)} on the current PCRs, then
     * {@code PolicyAuthorize} with the ticket. Fails with {@code VALUE} or {@code POLICY_FAIL} when the current state
     * is not the approved one and with {@code SIGNATURE} when the approval is not the authority's.
     */
    public SecretBytes unsealWithAuthorizedPolicy(PersistentHandle parent, TpmObjectBlob sealed,
                                                  PcrSelection selection, PolicyApproval approval) throws TpmException {
        Objects.requireNonNull(sealed, "sealed");
        Objects.requireNonNull(selection, "selection");
        ParsedApproval parsed = ParsedApproval.of(approval);
        return call("Unseal", scope -> {
            TPMT_TK_VERIFIED ticket = verifyApproval(scope, parsed);
            TPM_HANDLE object = load(scope, parent, sealed);
            TPM_HANDLE session = authorizedPolicySession(scope, selection, parsed, ticket);
            return unseal(object, session);
        });
    }

    /**
     * {@code TPM2_Sign} of a digest with a key whose authPolicy is {@code PolicyAuthorize(authority, policyRef)}
     * (the TIK): authorized by the same approval that releases a sealed keystore, so the key signs only in a
     * measured state the authority approved, and only until the approval expires. Returns the TPMT_SIGNATURE.
     */
    public byte[] signWithAuthorizedPolicy(PersistentHandle key, byte[] digest, PcrSelection selection,
                                           PolicyApproval approval) throws TpmException {
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(selection, "selection");
        byte[] d = digest.clone();
        ParsedApproval parsed = ParsedApproval.of(approval);
        return call("Sign", scope -> {
            TPMT_TK_VERIFIED ticket = verifyApproval(scope, parsed);
            tpm._withSession(authorizedPolicySession(scope, selection, parsed, ticket));
            run("Sign", () -> tpm.Sign(persistent(key), d, new TPMS_NULL_SIG_SCHEME(),
                    new TPMT_TK_HASHCHECK(TPM_HANDLE.from(TPM_RH.NULL), new byte[0])));
            return ResponseParameters.of(device.lastResponse(), 0).rest();
        });
    }

    /** An approval checked before the first TPM command, so bad input never loads anything. */
    private record ParsedApproval(PolicyApproval approval, TpmtPublic authorityPublic, TPMT_PUBLIC authority,
                                  TPMT_SIGNATURE signature) {
        static ParsedApproval of(PolicyApproval approval) {
            Objects.requireNonNull(approval, "approval");
            try {
                TpmtPublic authorityPublic = TpmtPublic.parse(approval.authorityPublic());
                TpmtSignature.parse(approval.signature());
                TPMT_SIGNATURE sig = TPMT_SIGNATURE.fromBytes(approval.signature());
                TPMT_PUBLIC authority = TPMT_PUBLIC.fromBytes(approval.authorityPublic());
                if (approval.approvedPolicy().length != 32 || approval.policyRef().length > 32) {
                    throw new IllegalArgumentException("an approval holds a 32-byte SHA-256 policy and a policyRef"
                            + " of at most 32 bytes");
                }
                return new ParsedApproval(approval, authorityPublic, authority, sig);
            } catch (MalformedStructureException | RuntimeException e) {
                throw new IllegalArgumentException("malformed policy approval: " + e.getMessage(), e);
            }
        }
    }

    /** LoadExternal of the authority, VerifySignature of the approval: the ticket PolicyAuthorize needs. */
    private TPMT_TK_VERIFIED verifyApproval(Scope scope, ParsedApproval p) throws TpmException {
        byte[] aHash = KeystorePolicy.approvalDigest(PolicyDigest.of(KeystorePolicy.HASH,
                p.approval().approvedPolicy()), p.approval().policyRef());
        String cacheKey = HexFormat.of().formatHex(aHash) + ":" + HexFormat.of().formatHex(p.authorityPublic().name())
                + ":" + HexFormat.of().formatHex(p.approval().signature());
        TPMT_TK_VERIFIED cached = tickets.get(cacheKey);
        if (cached != null) {
            return cached;
        }
        TPM_HANDLE key = run("LoadExternal", () -> tpm.LoadExternal(null, p.authority(),
                TPM_HANDLE.from(TPM_RH.OWNER)));
        scope.track(key);
        TPMT_TK_VERIFIED ticket = run("VerifySignature", () -> tpm.VerifySignature(key, aHash,
                p.signature().signature));
        scope.flushNow(key);
        tickets.put(cacheKey, ticket);
        return ticket;
    }

    /**
     * The approved state's steps ({@link KeystorePolicy#approvedPolicySteps}: PolicyPCR, then PolicyCounterTimer for
     * a clock-limited approval), then PolicyAuthorize with the ticket.
     */
    private TPM_HANDLE authorizedPolicySession(Scope scope, PcrSelection selection, ParsedApproval p,
                                               TPMT_TK_VERIFIED ticket) throws TpmException {
        TPM_HANDLE session = startPolicySession(scope, TPM_SE.POLICY);
        runSteps(session, approvedPolicySteps(selection, p.approval().limit()), new byte[0]);
        try {
            run("PolicyAuthorize", () -> tpm.PolicyAuthorize(session, p.approval().approvedPolicy(),
                    p.approval().policyRef(), p.authorityPublic().name(), ticket));
        } catch (TpmResponseException e) {
            // A ticket the TPM no longer accepts (TPM_RC_TICKET after TPM2_Clear) must not be offered again.
            tickets.clear();
            throw e;
        }
        return session;
    }

    /** The policy digest a TPM trial session computes for {@code PolicyPCR(selection, pcrDigest)}. */
    public byte[] trialPolicyPcr(PcrSelection selection, byte[] pcrDigest) throws TpmException {
        Objects.requireNonNull(selection, "selection");
        byte[] digest = pcrDigest.clone();
        return call("PolicyGetDigest", scope -> {
            TPM_HANDLE session = startPolicySession(scope, TPM_SE.TRIAL);
            run("PolicyPCR", () -> tpm.PolicyPCR(session, digest, new TPMS_PCR_SELECTION[] {selection(selection)}));
            return run("PolicyGetDigest", () -> tpm.PolicyGetDigest(session));
        });
    }

    private static List<PolicyStep> approvedPolicySteps(PcrSelection selection,
                                                        Optional<PolicyApproval.Limit> limit) {
        return limit.isPresent()
                ? KeystorePolicy.approvedPolicySteps(selection, limit.get().resetCount(), limit.get().clockBefore())
                : KeystorePolicy.approvedPolicySteps(selection);
    }

    /**
     * Runs {@code steps} in {@code session}; a PolicyPCR step passes {@code pcrDigest} (empty: the TPM's current
     * values; a trial session takes the digest of given values).
     */
    private void runSteps(TPM_HANDLE session, List<PolicyStep> steps, byte[] pcrDigest) throws TpmException {
        for (PolicyStep step : steps) {
            if (step instanceof PolicyStep.Pcr pcr) {
                run("PolicyPCR", () -> tpm.PolicyPCR(session, pcrDigest,
                        new TPMS_PCR_SELECTION[] {selection(pcr.selection())}));
            } else if (step instanceof PolicyStep.CounterTimer c) {
                run("PolicyCounterTimer", () -> tpm.PolicyCounterTimer(session, c.operandB(), c.offset(),
                        TPM_EO.fromInt(c.operation())));
            } else {
                throw new IllegalStateException("unknown policy step " + step);
            }
        }
    }

    /**
     * The policy digest a TPM trial session computes for {@code PolicyPCR(selection, pcrDigest)} followed by the
     * time limit's two {@code PolicyCounterTimer} steps.
     */
    public byte[] trialPolicyPcrWithin(PcrSelection selection, byte[] pcrDigest, PolicyApproval.Limit limit)
            throws TpmException {
        Objects.requireNonNull(selection, "selection");
        Objects.requireNonNull(limit, "limit");
        byte[] digest = pcrDigest.clone();
        return call("PolicyGetDigest", scope -> {
            TPM_HANDLE session = startPolicySession(scope, TPM_SE.TRIAL);
            runSteps(session, approvedPolicySteps(selection, Optional.of(limit)), digest);
            return run("PolicyGetDigest", () -> tpm.PolicyGetDigest(session));
        });
    }

    /**
     * {@code TPM2_ClockSet} with owner authorization {@code ownerAuth}: moves the TPM's clock forward to
     * {@code newClock} ms (the TPM refuses to move it back). Expires every clock-limited approval below it.
     */
    public void clockSet(SecretBytes ownerAuth, long newClock) throws TpmException {
        Objects.requireNonNull(ownerAuth, "ownerAuth");
        byte[] auth = ownerAuth.reveal();
        try {
            call("ClockSet", scope -> {
                TPM_HANDLE owner = TPM_HANDLE.from(TPM_RH.OWNER);
                owner.AuthValue = auth;
                run("ClockSet", () -> tpm.ClockSet(owner, newClock));
                return null;
            });
        } finally {
            java.util.Arrays.fill(auth, (byte) 0);
        }
    }

    /** The policy digest a TPM trial session computes for {@code PolicyAuthorize(keyName, policyRef)}. */
    public byte[] trialPolicyAuthorize(byte[] authorityKeyName, byte[] policyRef) throws TpmException {
        byte[] name = authorityKeyName.clone();
        byte[] ref = policyRef.clone();
        return call("PolicyGetDigest", scope -> {
            TPM_HANDLE session = startPolicySession(scope, TPM_SE.TRIAL);
            run("PolicyAuthorize", () -> tpm.PolicyAuthorize(session, new byte[0], ref, name,
                    new TPMT_TK_VERIFIED(TPM_HANDLE.from(TPM_RH.NULL), new byte[0])));
            return run("PolicyGetDigest", () -> tpm.PolicyGetDigest(session));
        });
    }

    // ---------------------------------------------------------------------------------------------- passwords, DA

    /**
     * Seals {@code secret} (at most 128 bytes) under {@code parent} as a keyed-hash data object opened by a password:
     * userWithAuth set and <em>noDA clear</em>, so every wrong password counts against the TPM's dictionary-attack
     * protection (TPM 2.0 Part 1 §19.8) and, after {@code maxTries} of them, the TPM refuses every DA-protected
     * authorization ({@code LOCKOUT}) until the recovery time passes or {@link #dictionaryAttackLockReset} runs.
     *
     * @param password the object's authValue, 1..32 bytes (the SHA-256 digest size); the TPM ignores trailing zero
     *                 bytes, so a password should not end with one
     */
    public TpmObjectBlob sealWithPassword(PersistentHandle parent, SecretBytes secret, SecretBytes password)
            throws TpmException {
        Objects.requireNonNull(parent, "parent");
        Objects.requireNonNull(secret, "secret");
        Objects.requireNonNull(password, "password");
        if (password.length() < 1 || password.length() > 32) {
            throw new IllegalArgumentException("a sealed object's password is 1..32 bytes, got " + password.length());
        }
        return call("Create", scope -> {
            byte[] data = secret.reveal();
            byte[] auth = password.reveal();
            try {
                run("Create", () -> tpm.Create(persistent(parent), new TPMS_SENSITIVE_CREATE(auth, data),
                        Templates.passwordSealedData(), new byte[0], new TPMS_PCR_SELECTION[0]));
            } finally {
                Arrays.fill(data, (byte) 0);
                Arrays.fill(auth, (byte) 0);
            }
            return createdObject();
        });
    }

    /**
     * Unseals an object made by {@link #sealWithPassword} with a password session (PWAP, TPM 2.0 Part 1 §19.6.5): the
     * password crosses the transport in clear. A wrong password fails with {@code AUTH_FAIL} (or {@code BAD_AUTH})
     * and counts as a dictionary-attack failure; while the TPM is in lockout every attempt, even with the right
     * password, fails with {@code LOCKOUT}.
     */
    public SecretBytes unsealWithPassword(PersistentHandle parent, TpmObjectBlob sealed, SecretBytes password)
            throws TpmException {
        Objects.requireNonNull(parent, "parent");
        Objects.requireNonNull(sealed, "sealed");
        Objects.requireNonNull(password, "password");
        byte[] auth = password.reveal();
        try {
            return call("Unseal", scope -> {
                TPM_HANDLE object = load(scope, parent, sealed);
                // TSS.Java 1.0.0: without explicit sessions a command gets a password session carrying the AuthValue
                // of the handle it authorizes.
                object.AuthValue = auth;
                try {
                    byte[] data = run("Unseal", () -> tpm.Unseal(object));
                    try {
                        return SecretBytes.copyOf(data);
                    } finally {
                        Arrays.fill(data, (byte) 0);
                        device.wipeLastResponse();
                    }
                } finally {
                    object.AuthValue = null;
                }
            });
        } finally {
            Arrays.fill(auth, (byte) 0);
        }
    }

    /**
     * {@code TPM2_DictionaryAttackParameters} with the lockout hierarchy's authorization (empty on a fresh TPM and on
     * swtpm): after {@code maxTries} failures the TPM locks out; one failure is forgotten every
     * {@code recoveryTimeSeconds} (0: only {@link #dictionaryAttackLockReset} recovers); after a failed lockout
     * authorization the lockout hierarchy waits {@code lockoutRecoverySeconds} (0: until the next TPM reset).
     */
    public void dictionaryAttackParameters(SecretBytes lockoutAuth, int maxTries, int recoveryTimeSeconds,
                                           int lockoutRecoverySeconds) throws TpmException {
        Objects.requireNonNull(lockoutAuth, "lockoutAuth");
        if (maxTries < 1 || recoveryTimeSeconds < 0 || lockoutRecoverySeconds < 0) {
            throw new IllegalArgumentException("maxTries must be >= 1 and the times >= 0, got " + maxTries + ", "
                    + recoveryTimeSeconds + ", " + lockoutRecoverySeconds);
        }
        TPM_HANDLE lockout = lockoutHandle(lockoutAuth);
        try {
            call("DictionaryAttackParameters", scope -> {
                run("DictionaryAttackParameters", () -> tpm.DictionaryAttackParameters(lockout, maxTries,
                        recoveryTimeSeconds, lockoutRecoverySeconds));
                return null;
            });
        } finally {
            Arrays.fill(lockout.AuthValue, (byte) 0);
        }
    }

    /**
     * {@code TPM2_DictionaryAttackLockReset} with the lockout hierarchy's authorization: clears the failure counter and
     * ends a lockout. A wrong {@code lockoutAuth} fails with {@code AUTH_FAIL} and blocks the lockout hierarchy for
     * the lockout-recovery time.
     */
    public void dictionaryAttackLockReset(SecretBytes lockoutAuth) throws TpmException {
        Objects.requireNonNull(lockoutAuth, "lockoutAuth");
        TPM_HANDLE lockout = lockoutHandle(lockoutAuth);
        try {
            call("DictionaryAttackLockReset", scope -> {
                run("DictionaryAttackLockReset", () -> tpm.DictionaryAttackLockReset(lockout));
                return null;
            });
        } finally {
            Arrays.fill(lockout.AuthValue, (byte) 0);
        }
    }

    /**
     * The dictionary-attack state from {@code TPM2_GetCapability(TPM_PROPERTIES)}: {@code TPM_PT_LOCKOUT_COUNTER},
     * {@code TPM_PT_MAX_AUTH_FAIL}, {@code TPM_PT_LOCKOUT_INTERVAL}, {@code TPM_PT_LOCKOUT_RECOVERY} and the
     * {@code inLockout} bit of {@code TPM_PT_PERMANENT}.
     */
    public DictionaryAttackState readDictionaryAttackState() throws TpmException {
        return call("GetCapability", scope -> {
            int first = TPM_PT.PERMANENT.toInt();
            Map<Integer, Integer> p = new TreeMap<>();
            GetCapabilityResponse r = run("GetCapability",
                    () -> tpm.GetCapability(TPM_CAP.TPM_PROPERTIES, first, 32));
            for (TPMS_TAGGED_PROPERTY t : ((TPML_TAGGED_TPM_PROPERTY) r.capabilityData).tpmProperty) {
                p.put(t.property.toInt(), t.value);
            }
            int[] wanted = {first, TPM_PT.LOCKOUT_COUNTER.toInt(), TPM_PT.MAX_AUTH_FAIL.toInt(),
                TPM_PT.LOCKOUT_INTERVAL.toInt(), TPM_PT.LOCKOUT_RECOVERY.toInt()};
            for (int w : wanted) {
                if (!p.containsKey(w)) {
                    throw new TpmTransportException(String.format(Locale.ROOT,
                            "the TPM did not report property 0x%x in TPM2_GetCapability(TPM_PROPERTIES)", w));
                }
            }
            boolean inLockout = (p.get(first) & TPMA_PERMANENT_IN_LOCKOUT) != 0;
            return new DictionaryAttackState(Integer.toUnsignedLong(p.get(wanted[1])),
                    Integer.toUnsignedLong(p.get(wanted[2])), Integer.toUnsignedLong(p.get(wanted[3])),
                    Integer.toUnsignedLong(p.get(wanted[4])), inLockout);
        });
    }

    // ---------------------------------------------------------------------------------------------- lifecycle

    /**
     * Drops the connection; the next operation reconnects. swtpm serves one connection at a time: call this before
     * other tools (tpm2-tools) use it, or before an orderly swtpm restart.
     */
    public void disconnect() {
        lock.lock();
        try {
            if (!closed) {
                device.disconnect();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Closes the connection. Idempotent. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (!closed) {
                closed = true;
                device.close();
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public String toString() {
        return "TpmClient[" + uri + "]";
    }

    // ---------------------------------------------------------------------------------------------- internals

    private SecretBytes unseal(TPM_HANDLE object, TPM_HANDLE session) throws TpmException {
        byte[] data = run("Unseal", () -> tpm._withSession(session).Unseal(object));
        try {
            return SecretBytes.copyOf(data);
        } finally {
            Arrays.fill(data, (byte) 0);
            device.wipeLastResponse();
        }
    }

    private static TPM_HANDLE lockoutHandle(SecretBytes lockoutAuth) {
        TPM_HANDLE lockout = TPM_HANDLE.from(TPM_RH.LOCKOUT);
        lockout.AuthValue = lockoutAuth.reveal();
        return lockout;
    }

    /** The outPrivate and outPublic of the TPM2_Create that just ran, byte-exact. */
    private TpmObjectBlob createdObject() throws TpmTransportException {
        ResponseParameters out = ResponseParameters.of(device.lastResponse(), 0);
        byte[] privateArea = out.tpm2b();
        byte[] publicArea = out.tpm2b();
        return new TpmObjectBlob(publicArea, privateArea);
    }

    private PcrValues readPcrs(PcrSelection selection) throws TpmException {
        TPM_ALG_ID bank = TPM_ALG_ID.fromInt(selection.bank().tpmId());
        Map<Integer, byte[]> values = new TreeMap<>();
        List<Integer> wanted = new ArrayList<>(selection.pcrs());
        while (!wanted.isEmpty()) {
            int[] ask = wanted.stream().mapToInt(Integer::intValue).toArray();
            PCR_ReadResponse r = run("PCR_Read", () -> tpm.PCR_Read(new TPMS_PCR_SELECTION[] {
                    new TPMS_PCR_SELECTION(bank, ask)}));
            List<Integer> got = new ArrayList<>();
            for (TPMS_PCR_SELECTION s : r.pcrSelectionOut) {
                for (int i = 0; i < s.pcrSelect.length * 8; i++) {
                    if ((s.pcrSelect[i / 8] & (1 << (i % 8))) != 0) {
                        got.add(i);
                    }
                }
            }
            boolean otherBank = r.pcrSelectionOut.length != 1 || !r.pcrSelectionOut[0].hash.equals(bank);
            if (got.isEmpty() || got.size() != r.pcrValues.length || otherBank || !wanted.containsAll(got)) {
                throw new TpmException("the TPM does not return PCRs " + wanted + " of bank " + selection.bank()
                        + "; is that bank allocated? (tpm2_getcap pcrs)");
            }
            for (int i = 0; i < got.size(); i++) {
                values.put(got.get(i), r.pcrValues[i].buffer);
            }
            wanted.removeAll(got);
        }
        List<byte[]> ordered = new ArrayList<>();
        for (int pcr : selection.pcrs()) {
            ordered.add(values.get(pcr));
        }
        return PcrValues.of(selection, ordered);
    }

    private static TPMS_PCR_SELECTION selection(PcrSelection s) {
        return new TPMS_PCR_SELECTION(TPM_ALG_ID.fromInt(s.bank().tpmId()), s.selectBitmap());
    }

    private TPM_HANDLE load(Scope scope, PersistentHandle parent, TpmObjectBlob blob) throws TpmException {
        TPMT_PUBLIC pub = callerPublic(blob.publicArea());
        TPM_HANDLE h = run("Load", () -> tpm.Load(persistent(parent), new TPM2B_PRIVATE(blob.privateArea()), pub));
        return scope.track(h);
    }

    private void evictInto(TPM_HANDLE loaded, PersistentHandle handle) throws TpmException {
        run("EvictControl", () -> tpm.EvictControl(TPM_HANDLE.from(TPM_RH.OWNER), loaded,
                TPM_HANDLE.persistent(handle.value() & 0x00ffffff)));
    }

    private void requireFree(PersistentHandle handle, String what) throws TpmException {
        if (readPublicRaw(handle).isPresent()) {
            throw new TpmException("cannot create the " + what + ": persistent handle " + handle
                    + " is occupied; evict it first (TpmClient.evict or tpm2_evictcontrol -C o -c " + handle + ")");
        }
    }

    private Optional<byte[]> readPublicRaw(PersistentHandle handle) throws TpmException {
        tpm._allowErrors().ReadPublic(persistent(handle));
        if (isHandleError(tpm._getLastResponseCode())) {
            return Optional.empty();
        }
        check("ReadPublic");
        return Optional.of(ResponseParameters.of(device.lastResponse(), 0).tpm2b());
    }

    private static boolean isHandleError(TPM_RC rc) {
        return rc == TPM_RC.HANDLE;
    }

    /** A policy session satisfied by {@code PolicySecret(TPM_RH_ENDORSEMENT)}: the EK templates' authPolicy. */
    private TPM_HANDLE endorsementPolicySession(Scope scope) throws TpmException {
        TPM_HANDLE session = startPolicySession(scope, TPM_SE.POLICY);
        run("PolicySecret", () -> tpm.PolicySecret(TPM_HANDLE.from(TPM_RH.ENDORSEMENT), session, new byte[0],
                new byte[0], new byte[0], 0));
        return session;
    }

    private TPM_HANDLE pcrPolicySession(Scope scope, PcrSelection selection) throws TpmException {
        TPM_HANDLE session = startPolicySession(scope, TPM_SE.POLICY);
        run("PolicyPCR", () -> tpm.PolicyPCR(session, new byte[0], new TPMS_PCR_SELECTION[] {selection(selection)}));
        return session;
    }

    private TPM_HANDLE startPolicySession(Scope scope, TPM_SE type) throws TpmException {
        byte[] nonceCaller = new byte[16];
        new java.security.SecureRandom().nextBytes(nonceCaller);
        StartAuthSessionResponse s = run("StartAuthSession", () -> tpm.StartAuthSession(
                TPM_HANDLE.from(TPM_RH.NULL), TPM_HANDLE.from(TPM_RH.NULL), nonceCaller, new byte[0], type,
                new TPMT_SYM_DEF(TPM_ALG_ID.NULL, 0, TPM_ALG_ID.NULL), TPM_ALG_ID.SHA256));
        return scope.track(s.handle);
    }

    private static TPM_HANDLE persistent(PersistentHandle h) {
        return TPM_HANDLE.persistent(h.value() & 0x00ffffff);
    }

    private static TPMT_PUBLIC tssPublic(byte[] publicArea) throws TpmException {
        try {
            return TPMT_PUBLIC.fromBytes(publicArea);
        } catch (RuntimeException e) {
            throw new TpmException("malformed TPMT_PUBLIC (" + publicArea.length + " bytes)", e);
        }
    }

    /** A public area the caller supplied: strictly parsed, refused as an argument error. */
    private static TPMT_PUBLIC callerPublic(byte[] publicArea) {
        try {
            TpmtPublic.parse(publicArea);
            return TPMT_PUBLIC.fromBytes(publicArea);
        } catch (MalformedStructureException | RuntimeException e) {
            throw new IllegalArgumentException("malformed object blob: " + e.getMessage(), e);
        }
    }

    private static TpmtPublic parsePublic(byte[] raw) throws TpmException {
        try {
            return TpmtPublic.parse(raw);
        } catch (MalformedStructureException e) {
            throw new TpmTransportException("the TPM returned a public area we cannot parse: " + e.getMessage(), e);
        }
    }

    private static byte[] checkQualifyingData(byte[] data) {
        if (data.length > 64) {
            throw new IllegalArgumentException("qualifying data is at most 64 bytes (a digest), got " + data.length);
        }
        return data.clone();
    }

    private static String ascii(int v) {
        byte[] b = {(byte) (v >>> 24), (byte) (v >>> 16), (byte) (v >>> 8), (byte) v};
        StringBuilder s = new StringBuilder();
        for (byte c : b) {
            if (c >= 0x20 && c < 0x7f) {
                s.append((char) c);
            }
        }
        return s.toString().trim();
    }

    // One TSS.Java command: errors allowed (so it never prints), then our own typed check.
    private <T> T run(String command, java.util.function.Supplier<T> body) throws TpmResponseException {
        tpm._allowErrors();
        T result = body.get();
        check(command);
        return result;
    }

    private void run(String command, Runnable body) throws TpmResponseException {
        tpm._allowErrors();
        body.run();
        check(command);
    }

    private void check(String command) throws TpmResponseException {
        TPM_RC rc = tpm._getLastResponseCode();
        if (rc != TPM_RC.SUCCESS) {
            throw new TpmResponseException(command, rc == null ? "UNKNOWN" : rc.name(), device.lastRawResponseCode());
        }
    }

    @FunctionalInterface
    private interface Operation<T> {
        T run(Scope scope) throws TpmException;
    }

    private <T> T call(String command, Operation<T> operation) throws TpmException {
        lock.lock();
        try {
            if (closed) {
                throw new IllegalStateException("TpmClient for " + uri + " is closed");
            }
            Scope scope = new Scope();
            try {
                return operation.run(scope);
            } catch (TssDevice.Failure f) {
                scope.transportFailed = true;
                throw f.transportException();
            } catch (TpmTransportException e) {
                scope.transportFailed = true;
                throw e;
            } catch (TpmException | IllegalArgumentException e) {
                throw e;
            } catch (RuntimeException e) {
                // TSS.Java reports what it cannot parse as IndexOutOfBounds/NullPointer exceptions. The handles this
                // operation loaded are still flushed (the scope closes normally).
                throw new TpmException("TSS.Java failed in TPM2_" + command + " on " + uri + ": " + e, e);
            } finally {
                scope.close();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Transient objects and sessions loaded by one operation, flushed in reverse order when it ends. */
    private final class Scope {
        private final Deque<TPM_HANDLE> handles = new ArrayDeque<>();
        private boolean transportFailed;

        TPM_HANDLE track(TPM_HANDLE h) {
            handles.push(h);
            return h;
        }

        void flushNow(TPM_HANDLE h) throws TpmResponseException {
            handles.remove(h);
            run("FlushContext", () -> tpm.FlushContext(h));
        }

        void close() {
            if (transportFailed && !handles.isEmpty()) {
                // After a timeout the TPM may be alive: one reconnect-and-flush attempt, then give up.
                LOG.warn("TPM transport failed; trying once to flush {} transient handle(s)", handles.size());
            }
            Map<String, String> failures = new LinkedHashMap<>();
            while (!handles.isEmpty()) {
                TPM_HANDLE h = handles.pop();
                try {
                    tpm._allowErrors().FlushContext(h);
                    if (tpm._getLastResponseCode() != TPM_RC.SUCCESS) {
                        failures.put(String.format(Locale.ROOT, "0x%08x", h.handle),
                                String.valueOf(tpm._getLastResponseCode()));
                    }
                } catch (RuntimeException e) {
                    failures.put(String.format(Locale.ROOT, "0x%08x", h.handle), e.toString());
                    if (e instanceof TssDevice.Failure) {
                        while (!handles.isEmpty()) {
                            failures.put(String.format(Locale.ROOT, "0x%08x", handles.pop().handle), "not tried");
                        }
                        LOG.warn("TPM unreachable: handles {} stay loaded until the TPM restarts", failures.keySet());
                        return;
                    }
                }
            }
            if (!failures.isEmpty()) {
                LOG.warn("could not flush TPM handles {}", failures);
            }
        }
    }
}
