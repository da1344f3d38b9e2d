package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.time.Duration;
import java.util.List;
import java.util.OptionalInt;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The bounds' rules on their values, what they warn of at start, and which addresses count as one client. */
@Timeout(30)
class ConnectionBoundsTest {
    @Test
    void theDefaults_fitTenThousandAgents_andACiMachinesOpenFileLimit() {
        ConnectionBounds d = ConnectionBounds.defaults();
        assertTrue(d.maxConnections() >= 10_000 && d.maxConnections() <= 20_000, "bound: " + d);
        assertEquals(List.of(), ConnectionBounds.hostLimitWarnings(d, OptionalLong.of(20_000), OptionalInt.of(4096)),
                "no warning with an open-file limit of 20,000 and somaxconn 4096");
    }

    @Test
    void valuesOutsideTheirRange_areRefused_sayingWhich() {
        Duration t = Duration.ofSeconds(15);
        assertEquals("the connection bound must be 1..1000000, got 0", assertThrows(IllegalArgumentException.class,
                () -> new ConnectionBounds(0, 1, 1, t)).getMessage());
        assertEquals("the per-address connection bound must be 1..16 (the connection bound), got 17",
                assertThrows(IllegalArgumentException.class, () -> new ConnectionBounds(16, 17, 1, t)).getMessage());
        assertEquals("the accept queue must be 1..65535, got 0", assertThrows(IllegalArgumentException.class,
                () -> new ConnectionBounds(16, 1, 0, t)).getMessage());
        assertEquals("the request timeout must be 1 s..10 min, got PT0.5S", assertThrows(
                IllegalArgumentException.class, () -> new ConnectionBounds(16, 1, 1, Duration.ofMillis(500)))
                .getMessage());
    }

    @Test
    void aBoundTheMachineCannotGive_isWarnedOf_withWhatToDo() {
        ConnectionBounds b = new ConnectionBounds(20_000, 1_000, 8_192, Duration.ofSeconds(15));
        List<String> w = ConnectionBounds.hostLimitWarnings(b, OptionalLong.of(20_000), OptionalInt.of(4096));
        assertEquals(2, w.size(), "both limits: " + w);
        assertTrue(w.get(0).startsWith("--max-connections 20000 is more than this process can open: its open-file"
                + " limit is 20000") && w.get(0).endsWith("lower --max-connections to 19488"), w.get(0));
        assertTrue(w.get(1).startsWith("--accept-queue 8192 is above the kernel's net.core.somaxconn (4096)"),
                w.get(1));
        assertEquals(List.of(), ConnectionBounds.hostLimitWarnings(b, OptionalLong.empty(), OptionalInt.empty()),
                "nothing said when the limits are not known");
    }

    @Test
    void theKernelsBacklogCap_isReadWhole() throws Exception {
        java.nio.file.Path file = java.nio.file.Path.of("/proc/sys/net/core/somaxconn");
        org.junit.jupiter.api.Assumptions.assumeTrue(java.nio.file.Files.exists(file), "Linux only");
        Process sysctl = new ProcessBuilder("cat", file.toString()).redirectErrorStream(true).start();
        assertTrue(sysctl.waitFor(10, java.util.concurrent.TimeUnit.SECONDS), "cat ended");
        int expected = Integer.parseInt(new String(sysctl.getInputStream().readAllBytes(),
                java.nio.charset.StandardCharsets.US_ASCII).strip());
        // Files.readString gave "4" for "4096\n" here: a cap of 4 would have warned of every accept queue.
        assertEquals(OptionalInt.of(expected), ConnectionBounds.somaxconn(), "as cat reads " + file);
    }

    @Test
    void ipv6Addresses_countByTheirSlash64_ipv4ByTheAddress() throws Exception {
        assertEquals(key("2001:db8:0:0:1:2:3:4"), key("2001:db8::ffff"), "one /64, one client");
        assertNotEquals(key("2001:db8:0:1::1"), key("2001:db8::1"), "another /64, another client");
        assertNotEquals(key("192.0.2.1"), key("192.0.2.2"), "IPv4: each address its own");
        assertEquals(key("192.0.2.1"), key("::ffff:192.0.2.1"), "an IPv4-mapped address is the IPv4 address");
    }

    private static ClientAddressLimit.AddressKey key(String address) throws Exception {
        return ClientAddressLimit.AddressKey.of(InetAddress.getByName(address));
    }
}
