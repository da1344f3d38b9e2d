package io.tpmphone.tpm;

/**
 * Fixed properties of a TPM (TPM 2.0 Part 2 §6.13, {@code TPM_PT_*}).
 *
 * @param family          {@code TPM_PT_FAMILY_INDICATOR}, e.g. "2.0"
 * @param specLevel       {@code TPM_PT_LEVEL}
 * @param specRevision    {@code TPM_PT_REVISION} / 100, e.g. 1.59
 * @param manufacturer    {@code TPM_PT_MANUFACTURER} as four ASCII characters, e.g. "IBM"
 * @param vendorString    {@code TPM_PT_VENDOR_STRING_1..4}
 * @param firmwareVersion {@code TPM_PT_FIRMWARE_VERSION_1} and {@code _2} as "hi.lo.hi.lo"
 */
public record TpmInfo(String family, int specLevel, double specRevision, String manufacturer, String vendorString,
                      String firmwareVersion) {
}
