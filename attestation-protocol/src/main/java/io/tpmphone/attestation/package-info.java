/**
 * TPM 2.0 wire formats and verifier-side checks shared by every tpmphone party: strict parsers of
 * {@code TPMS_ATTEST}, {@code TPMT_PUBLIC} and {@code TPMT_SIGNATURE}, quote and certify verification,
 * policy-digest computation and the server side of credential activation ({@link MakeCredential}).
 *
 * <p>Pure Java (JCA plus Bouncy Castle ASN.1): no TPM library. Every value type is immutable and
 * thread-safe; byte arrays are copied in and out. Parsers reject what they do not know (unknown algorithms,
 * unsupported structure types, truncation, trailing bytes) with a {@link MalformedStructureException};
 * verifiers return a verified object or throw a {@link VerificationException} naming the failed
 * {@link VerificationException.Check}.
 *
 * <p>References: TPM 2.0 Library Specification, Part 1 (Architecture), Part 2 (Structures), Part 3
 * (Commands).
 */
package io.tpmphone.attestation;
