/**
 * The sealed keystore: a root secret only the TPM releases, in an approved measured state, from which per-call SRTP
 * master keys are derived; replayed key material is refused. Start at {@link io.tpmphone.keystore.SealedKeystore}.
 */
package io.tpmphone.keystore;
