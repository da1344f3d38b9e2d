/**
 * Internals of {@code swtpm-test}: finding executables, ports, the local EK certificate authority, raw TPM framing
 * and JVM-exit cleanup. Not an API: other modules use only {@link io.tpmphone.swtpm}.
 */
package io.tpmphone.swtpm.internal;
