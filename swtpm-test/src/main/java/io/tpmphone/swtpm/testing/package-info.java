/**
 * Small helpers for any module's tests, shipped here next to the swtpm fixtures: {@link
 * io.tpmphone.swtpm.testing.FreePorts} picks loopback ports, and {@link io.tpmphone.swtpm.testing.Await} waits for a
 * condition with a deadline and, when it times out, says what was awaited and what was last seen. Prefer a real event
 * (a latch, a future, a listener, {@code Process.onExit()}, a line read from a stream) where the code under test has
 * one; {@code Await} is for state that can only be observed by asking again.
 */
package io.tpmphone.swtpm.testing;
