package io.tpmphone.attestation;

import java.security.GeneralSecurityException;
import java.util.Objects;

/**
 * A TPM structure could not be parsed: it is truncated, has trailing bytes, or holds a value this library does
 * not accept (unknown algorithm, unsupported type, out-of-range size).
 *
 * <p>The message names the structure, the field, the byte offset and what was expected versus found.
 * {@link #structure()}, {@link #field()} and {@link #offset()} give the same information to code.
 */
public class MalformedStructureException extends GeneralSecurityException {
    private static final long serialVersionUID = 1L;

    /** Offset value used when the failure is not tied to a byte position. */
    public static final int NO_OFFSET = -1;

    private final String structure;
    private final String field;
    private final int offset;

    /**
     * @param structure TPM structure name, e.g. {@code TPMS_ATTEST}
     * @param field field path inside the structure, e.g. {@code clockInfo.safe}
     * @param offset byte offset of the field in the input, or {@link #NO_OFFSET}
     * @param detail what was expected versus what was found
     */
    public MalformedStructureException(String structure, String field, int offset, String detail) {
        this(structure, field, offset, detail, null);
    }

    /** As {@link #MalformedStructureException(String, String, int, String)}, chaining {@code cause}. */
    public MalformedStructureException(String structure, String field, int offset, String detail, Throwable cause) {
        super(format(structure, field, offset, detail), cause);
        this.structure = Objects.requireNonNull(structure, "structure");
        this.field = Objects.requireNonNull(field, "field");
        this.offset = offset;
    }

    private static String format(String structure, String field, int offset, String detail) {
        String where = offset == NO_OFFSET ? "" : " at offset " + offset;
        return "malformed " + structure + "." + field + where + ": " + detail;
    }

    /** The TPM structure being parsed, e.g. {@code TPMS_ATTEST}. */
    public String structure() {
        return structure;
    }

    /** The field path that failed, e.g. {@code magic} or {@code attested.pcrSelect.count}. */
    public String field() {
        return field;
    }

    /** Byte offset of the failing field in the parsed input, or {@link #NO_OFFSET}. */
    public int offset() {
        return offset;
    }
}
