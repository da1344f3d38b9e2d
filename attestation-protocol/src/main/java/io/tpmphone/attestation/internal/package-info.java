/**
 * Implementation details of {@code io.tpmphone.attestation}: the bounds-checked TPM wire reader and writer,
 * KDFa/KDFe, and shared signature checks. Not an API: may change without notice.
 */
package io.tpmphone.attestation.internal;
