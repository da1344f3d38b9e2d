package io.tpmphone.tpm;

import java.util.Locale;

/**
 * The TPM executed a command and answered with an error response code. {@link #responseCodeName()} is the TCG name
 * without the {@code TPM_RC_} prefix ({@code POLICY_FAIL}, {@code OBJECT_MEMORY}, ...), {@link #rawResponseCode()}
 * the full code as it came from the TPM, including the handle/session/parameter number bits.
 */
public final class TpmResponseException extends TpmException {
    private static final long serialVersionUID = 1L;

    private final String command;
    private final String responseCodeName;
    private final int rawResponseCode;

    public TpmResponseException(String command, String responseCodeName, int rawResponseCode) {
        super(String.format(Locale.ROOT, "TPM2_%s failed: TPM_RC_%s (0x%x)", command, responseCodeName, rawResponseCode));
        this.command = command;
        this.responseCodeName = responseCodeName;
        this.rawResponseCode = rawResponseCode;
    }

    /** The command that failed, e.g. {@code Unseal}. */
    public String command() {
        return command;
    }

    /** The response code name without {@code TPM_RC_}, e.g. {@code POLICY_FAIL}. */
    public String responseCodeName() {
        return responseCodeName;
    }

    public int rawResponseCode() {
        return rawResponseCode;
    }
}
