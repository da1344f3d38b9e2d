/**
 * Real swtpm (software TPM 2.0) instances for tests: {@link io.tpmphone.swtpm.SwtpmProcess} to start, reboot, kill
 * and clean up one, and the JUnit 5 extension {@link io.tpmphone.swtpm.SwtpmExtension} /
 * {@link io.tpmphone.swtpm.WithSwtpm} that gives a test class or method its own. Tests fail, never skip, when swtpm
 * is not installed ({@link io.tpmphone.swtpm.SwtpmNotInstalledException}). Free ports and waiting with a deadline are
 * in {@link io.tpmphone.swtpm.testing}.
 */
package io.tpmphone.swtpm;
