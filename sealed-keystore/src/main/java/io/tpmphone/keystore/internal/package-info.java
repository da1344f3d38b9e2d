/**
 * Implementation details of {@code io.tpmphone.keystore}: HKDF, the fingerprint log, the keystore directory format.
 * Not an API: may change without notice.
 */
package io.tpmphone.keystore.internal;
