package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.PcrSelectionCodec;
import io.tpmphone.attestation.internal.TpmReader;
import io.tpmphone.attestation.internal.TpmWriter;
import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/**
 * A strictly parsed {@code TPMS_ATTEST} (TPM 2.0 Part 2 §10.12.12) of type quote or certify.
 *
 * <p>Parsing checks the structure only: magic {@code TPM_GENERATED_VALUE}, a supported type, field sizes,
 * {@code clockInfo.safe} in {0, 1}, no truncation, no trailing bytes. It does <em>not</em> check a signature:
 * use {@link QuoteVerifier} or {@link CertifyVerifier} for evidence. Immutable and thread-safe.
 */
public final class TpmsAttest {
    /** {@code TPM_GENERATED_VALUE}. */
    public static final int MAGIC_TPM_GENERATED = 0xFF544347;
    /** Largest {@code TPM2B_NAME} buffer: a SHA-512 name (2 + 64 bytes). */
    static final int MAX_NAME = 2 + 64;
    /** Largest {@code TPM2B_DATA} buffer ({@code sizeof(TPMT_HA)}). */
    static final int MAX_DATA = 2 + 64;
    /** Largest {@code TPM2B_DIGEST} buffer. */
    static final int MAX_DIGEST = 64;

    private static final String STRUCTURE = "TPMS_ATTEST";

    private final byte[] encoded;
    private final AttestType type;
    private final byte[] qualifiedSigner;
    private final byte[] extraData;
    private final ClockInfo clockInfo;
    private final long firmwareVersion;
    private final QuoteInfo quoteInfo;
    private final CertifyInfo certifyInfo;

    private TpmsAttest(byte[] encoded, AttestType type, byte[] qualifiedSigner, byte[] extraData,
            ClockInfo clockInfo, long firmwareVersion, QuoteInfo quoteInfo, CertifyInfo certifyInfo) {
        this.encoded = encoded;
        this.type = type;
        this.qualifiedSigner = qualifiedSigner;
        this.extraData = extraData;
        this.clockInfo = clockInfo;
        this.firmwareVersion = firmwareVersion;
        this.quoteInfo = quoteInfo;
        this.certifyInfo = certifyInfo;
    }

    /**
     * Parses a complete marshalled {@code TPMS_ATTEST}.
     *
     * @throws MalformedStructureException with {@link MalformedStructureException#field()} {@code magic} for a
     *     wrong magic, {@code type} for an unsupported type, and the failing field otherwise
     */
    public static TpmsAttest parse(byte[] attest) throws MalformedStructureException {
        byte[] copy = Objects.requireNonNull(attest, "attest").clone();
        TpmReader r = new TpmReader(copy, STRUCTURE);
        long magic = r.u32("magic");
        if (magic != (MAGIC_TPM_GENERATED & 0xFFFF_FFFFL)) {
            throw r.error("magic", 0, String.format(
                    "magic is 0x%08X; expected TPM_GENERATED_VALUE 0xFF544347 (not produced by a TPM)", magic));
        }
        int typeAt = r.offset();
        int tag = r.u16("type");
        AttestType type;
        if (tag == AttestType.QUOTE.tag()) {
            type = AttestType.QUOTE;
        } else if (tag == AttestType.CERTIFY.tag()) {
            type = AttestType.CERTIFY;
        } else {
            throw r.error("type", typeAt, String.format("unsupported attestation type 0x%04X; expected "
                    + "TPM_ST_ATTEST_QUOTE (0x8018) or TPM_ST_ATTEST_CERTIFY (0x8017)", tag));
        }
        byte[] qualifiedSigner = r.tpm2b("qualifiedSigner", MAX_NAME);
        byte[] extraData = r.tpm2b("extraData", MAX_DATA);
        long clock = r.u64("clockInfo.clock");
        long resetCount = r.u32("clockInfo.resetCount");
        long restartCount = r.u32("clockInfo.restartCount");
        int safeAt = r.offset();
        int safe = r.u8("clockInfo.safe");
        if (safe > 1) {
            throw r.error("clockInfo.safe", safeAt, "safe is " + safe + "; expected 0 or 1 (TPMI_YES_NO)");
        }
        ClockInfo clockInfo = new ClockInfo(clock, resetCount, restartCount, safe == 1);
        long firmwareVersion = r.u64("firmwareVersion");
        QuoteInfo quoteInfo = null;
        CertifyInfo certifyInfo = null;
        if (type == AttestType.QUOTE) {
            PcrSelection selection = PcrSelectionCodec.read(r, "attested.quote.pcrSelect.");
            int digestAt = r.offset();
            byte[] pcrDigest = r.tpm2b("attested.quote.pcrDigest", MAX_DIGEST);
            if (pcrDigest.length == 0) {
                throw r.error("attested.quote.pcrDigest", digestAt, "pcrDigest is empty; expected a digest");
            }
            quoteInfo = new QuoteInfo(selection, pcrDigest);
        } else {
            byte[] name = r.tpm2b("attested.certify.name", MAX_NAME);
            byte[] qualifiedName = r.tpm2b("attested.certify.qualifiedName", MAX_NAME);
            certifyInfo = new CertifyInfo(name, qualifiedName);
        }
        r.requireEnd();
        return new TpmsAttest(copy, type, qualifiedSigner, extraData, clockInfo, firmwareVersion, quoteInfo,
                certifyInfo);
    }

    /**
     * Marshals a {@code TPMS_ATTEST} from raw parts without validating them, so tests can build malformed
     * variants (any magic, any type, any attested body).
     *
     * @param attested the marshalled {@code TPMU_ATTEST} body
     */
    public static byte[] encode(int magic, int type, byte[] qualifiedSigner, byte[] extraData, ClockInfo clockInfo,
            long firmwareVersion, byte[] attested) {
        Objects.requireNonNull(clockInfo, "clockInfo");
        return new TpmWriter()
                .u32(magic & 0xFFFF_FFFFL)
                .u16(type)
                .tpm2b(qualifiedSigner)
                .tpm2b(extraData)
                .u64(clockInfo.clock())
                .u32(clockInfo.resetCount())
                .u32(clockInfo.restartCount())
                .u8(clockInfo.safe() ? 1 : 0)
                .u64(firmwareVersion)
                .bytes(attested)
                .toByteArray();
    }

    /** Marshals a well-formed quote {@code TPMS_ATTEST}, as TPM2_Quote would produce it. */
    public static byte[] encodeQuote(byte[] qualifiedSigner, byte[] extraData, ClockInfo clockInfo,
            long firmwareVersion, PcrSelection selection, byte[] pcrDigest) {
        byte[] attested = new TpmWriter().bytes(selection.toTpml()).tpm2b(pcrDigest).toByteArray();
        return encode(MAGIC_TPM_GENERATED, AttestType.QUOTE.tag(), qualifiedSigner, extraData, clockInfo,
                firmwareVersion, attested);
    }

    /** Marshals a well-formed certify {@code TPMS_ATTEST}, as TPM2_Certify would produce it. */
    public static byte[] encodeCertify(byte[] qualifiedSigner, byte[] extraData, ClockInfo clockInfo,
            long firmwareVersion, byte[] name, byte[] qualifiedName) {
        byte[] attested = new TpmWriter().tpm2b(name).tpm2b(qualifiedName).toByteArray();
        return encode(MAGIC_TPM_GENERATED, AttestType.CERTIFY.tag(), qualifiedSigner, extraData, clockInfo,
                firmwareVersion, attested);
    }

    /** Exactly the parsed bytes (a copy). */
    public byte[] encoded() {
        return encoded.clone();
    }

    /** Always {@link #MAGIC_TPM_GENERATED}: the parser rejects anything else. */
    public int magic() {
        return MAGIC_TPM_GENERATED;
    }

    public AttestType type() {
        return type;
    }

    /** The qualified name of the signing key ({@code TPM2B_NAME} buffer). */
    public byte[] qualifiedSigner() {
        return qualifiedSigner.clone();
    }

    /** The caller's qualifying data (nonce) ({@code TPM2B_DATA} buffer). */
    public byte[] extraData() {
        return extraData.clone();
    }

    public ClockInfo clockInfo() {
        return clockInfo;
    }

    public long firmwareVersion() {
        return firmwareVersion;
    }

    /** Present iff {@link #type()} is {@link AttestType#QUOTE}. */
    public Optional<QuoteInfo> quoteInfo() {
        return Optional.ofNullable(quoteInfo);
    }

    /** Present iff {@link #type()} is {@link AttestType#CERTIFY}. */
    public Optional<CertifyInfo> certifyInfo() {
        return Optional.ofNullable(certifyInfo);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TpmsAttest other && Arrays.equals(encoded, other.encoded);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encoded);
    }

    @Override
    public String toString() {
        return "TpmsAttest[type=" + type + ", clock=" + clockInfo + ", firmwareVersion=0x"
                + Long.toHexString(firmwareVersion) + ", " + (quoteInfo != null ? quoteInfo : certifyInfo) + "]";
    }
}
