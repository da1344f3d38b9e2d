/**
 * Internals of {@code swtpm-test}: finding executables, ports, the local EK certificate authority, raw TPM framing
 * and JVM-exit cleanup. Not an API: other modules use only {@link io.tpmphone.swtpm} and
 * {@link io.tpmphone.swtpm.testing}.
 */
package io.tpmphone.swtpm.internal;
