package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TpmUriTest {

    @Test
    void swtpmUri_parsesHostPortAndTimeout() {
        TpmUri uri = TpmUri.parse("swtpm:host=10.0.0.1,port=2321,timeout=250");
        assertEquals(TpmUri.Kind.SWTPM, uri.kind());
        assertEquals("10.0.0.1", uri.host().orElseThrow());
        assertEquals(2321, uri.port());
        assertEquals(Duration.ofMillis(250), uri.timeout());
        assertEquals(uri, TpmUri.parse(uri.toString()));
    }

    @Test
    void swtpmUriWithoutHost_defaultsToLoopback() {
        TpmUri uri = TpmUri.parse("swtpm:port=2321");
        assertEquals("127.0.0.1", uri.host().orElseThrow());
        assertEquals(TpmUri.DEFAULT_TIMEOUT, uri.timeout());
    }

    @Test
    void deviceUri_parsesPath() {
        TpmUri uri = TpmUri.parse("device:/dev/tpmrm0");
        assertEquals(TpmUri.Kind.DEVICE, uri.kind());
        assertEquals(Path.of("/dev/tpmrm0"), uri.devicePath().orElseThrow());
        assertEquals("device:/dev/tpmrm0", uri.toString());
        assertEquals(Duration.ofMillis(900), TpmUri.parse("device:/dev/tpm0,timeout=900").timeout());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "swtpm", "swtpm:host=x", "swtpm:port=0", "swtpm:port=70000", "swtpm:port=abc",
        "swtpm:port=1,port=2", "swtpm:port=1,color=red", "mssim:port=2321", "device:", "device:/dev/tpm0,host=x",
        "swtpm:port=1,timeout=-5", "swtpm:port"})
    void malformedUri_isRejectedWithTheAcceptedForms(String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TpmUri.parse(text));
        assertTrue(e.getMessage().contains("swtpm:host=127.0.0.1,port=2321"), e.getMessage());
    }
}
