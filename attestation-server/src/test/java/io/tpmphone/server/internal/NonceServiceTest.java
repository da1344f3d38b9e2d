package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.time.Clock;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class NonceServiceTest {

    @Test
    void anotherRequestersFlood_doesNotEvictAHostsNonce_butItsOwnOldestGoes() throws Exception {
        NonceService nonces = new NonceService(Clock.systemUTC());
        byte[] hosts = nonces.issue("ak-1", "127.0.0.1", Duration.ofSeconds(30), null);
        byte[] attackersFirst = nonces.issue("ak-1", "10.9.9.9", Duration.ofSeconds(30), null);
        for (int i = 0; i < 50; i++) {
            nonces.issue("ak-1", "10.9.9.9", Duration.ofSeconds(30), null);
        }
        assertNull(nonces.consume(hosts, "ak-1").refusal(), "the host's nonce survives the flood");
        assertEquals(NonceService.Refusal.UNKNOWN, nonces.consume(attackersFirst, "ak-1").refusal(),
                "the flooder only evicted its own oldest nonces");
        assertEquals(NonceService.Refusal.UNKNOWN, nonces.consume(hosts, "ak-1").refusal(), "single use");
    }

    @Test
    void aNonceForAnotherAk_orAfterItsTtl_isRefused() throws Exception {
        NonceService nonces = new NonceService(Clock.systemUTC());
        byte[] n = nonces.issue("ak-1", "127.0.0.1", Duration.ofSeconds(30), null);
        assertEquals(NonceService.Refusal.OTHER_KEY, nonces.consume(n, "ak-2").refusal());
        byte[] expired = nonces.issue("ak-1", "127.0.0.1", Duration.ofMillis(-1), null);
        assertEquals(NonceService.Refusal.EXPIRED, nonces.consume(expired, "ak-1").refusal());
    }
}
