package io.tpmphone.swtpm.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class AwaitTest {
    @Test
    void returnsTheFirstValueThatIsDone() {
        AtomicInteger calls = new AtomicInteger();
        int value = Await.until("the third call", Duration.ofSeconds(5), calls::incrementAndGet, n -> n >= 3);
        assertEquals(3, value);
    }

    @Test
    void timingOut_failsWithWhatWasAwaitedAndTheLastValueSeen() {
        AssertionError e = assertThrows(AssertionError.class,
                () -> Await.until("the answer", Duration.ofMillis(100), () -> "forty-one", s -> s.equals("42")));
        assertEquals("timed out after 100 ms waiting for the answer; last seen: forty-one", e.getMessage());
    }

    @Test
    void aConditionThatNeverHolds_failsWithWhatSeenDescribes() {
        AssertionError e = assertThrows(AssertionError.class,
                () -> Await.until("the door to open", Duration.ofMillis(50), () -> false, () -> "the door is shut"));
        assertEquals("timed out after 50 ms waiting for the door to open; last seen: the door is shut", e.getMessage());
    }

    @Test
    void aProbeThatThrows_isNotYet_andItsLastExceptionIsTheCause() {
        AtomicInteger calls = new AtomicInteger();
        assertEquals("up", Await.until("the server", Duration.ofSeconds(5), () -> {
            if (calls.incrementAndGet() < 3) {
                throw new IOException("connection refused");
            }
            return "up";
        }, "up"::equals));

        IOException refused = new IOException("connection refused");
        AssertionError e = assertThrows(AssertionError.class, () -> Await.until("the server", Duration.ofMillis(50),
                () -> {
                    throw refused;
                }, s -> true));
        assertSame(refused, e.getCause(), e::toString);
        assertTrue(e.getMessage().endsWith("last seen: " + refused), e.getMessage());
    }

    @Test
    void anErrorInsideTheProbe_endsTheWaitAtOnce() {
        AssertionError inner = new AssertionError("wrong state");
        long started = System.nanoTime();
        AssertionError e = assertThrows(AssertionError.class, () -> Await.until("anything", Duration.ofSeconds(30),
                () -> {
                    throw inner;
                }, s -> true));
        assertSame(inner, e);
        assertTrue(System.nanoTime() - started < Duration.ofSeconds(10).toNanos(), "returned before the deadline");
    }

    @Test
    void anInterruptedWaiter_stopsWaiting() {
        Thread.currentThread().interrupt();
        try {
            AssertionError e = assertThrows(AssertionError.class,
                    () -> Await.until("anything", Duration.ofSeconds(30), () -> false, () -> "no"));
            assertEquals("interrupted while waiting for anything", e.getMessage());
            assertTrue(Thread.currentThread().isInterrupted(), "the interrupt is kept for the caller");
        } finally {
            Thread.interrupted();
        }
    }

    @Test
    void anEvent_isAwaitedWithoutPolling_andItsTimeOutSaysWhatWasSeen() {
        java.util.concurrent.CompletableFuture<String> done = java.util.concurrent.CompletableFuture.completedFuture("ok");
        assertEquals("ok", Await.event("done", Duration.ofSeconds(1), done, () -> "never asked"));
        AssertionError e = assertThrows(AssertionError.class, () -> Await.event("the call to end", Duration.ofMillis(50),
                new java.util.concurrent.CompletableFuture<String>(), () -> "Call[x ESTABLISHED]"));
        assertEquals("timed out after 50 ms waiting for the call to end; last seen: Call[x ESTABLISHED]",
                e.getMessage());
    }

    @Test
    void freePorts_areUsableAtOnce() throws IOException {
        int tcp = FreePorts.tcp();
        try (java.net.ServerSocket s = new java.net.ServerSocket(tcp, 1, java.net.InetAddress.getLoopbackAddress())) {
            assertEquals(tcp, s.getLocalPort());
        }
        int both = FreePorts.tcpAndUdpWithNextTcp();
        try (java.net.DatagramSocket u = new java.net.DatagramSocket(both, java.net.InetAddress.getLoopbackAddress());
             java.net.ServerSocket t = new java.net.ServerSocket(both + 1, 1, java.net.InetAddress.getLoopbackAddress())) {
            assertEquals(both, u.getLocalPort());
            assertEquals(both + 1, t.getLocalPort());
        }
    }
}
