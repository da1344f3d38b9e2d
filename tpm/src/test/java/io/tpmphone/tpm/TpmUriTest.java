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

    @Test
    void swtpmSocketUri_parsesPathAndTimeout_andPrintsTheSameForm() {
        TpmUri uri = TpmUri.parse("swtpm:socket=/run/user/1000/tpmphone/swtpm/server.sock,timeout=250");
        assertEquals(TpmUri.Kind.SWTPM_SOCKET, uri.kind());
        assertEquals(Path.of("/run/user/1000/tpmphone/swtpm/server.sock"), uri.socketPath().orElseThrow());
        assertTrue(uri.host().isEmpty(), "no host for a socket: " + uri.host());
        assertTrue(uri.devicePath().isEmpty(), "a socket is not a device: " + uri.devicePath());
        assertEquals(0, uri.port());
        assertEquals(Duration.ofMillis(250), uri.timeout());
        assertEquals("swtpm:socket=/run/user/1000/tpmphone/swtpm/server.sock,timeout=250", uri.toString());
        assertEquals(uri, TpmUri.parse(uri.toString()));
        assertEquals("swtpm:socket=/tmp/s.sock", TpmUri.swtpmSocket(Path.of("/tmp/s.sock")).toString());
    }

    @Test
    void swtpmSocketPathLongerThanUnixAllows_isRejectedWithItsLength() {
        String path = "/" + "d".repeat(TpmUri.MAX_SOCKET_PATH_BYTES);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TpmUri.parse("swtpm:socket=" + path));
        assertTrue(e.getMessage().contains((TpmUri.MAX_SOCKET_PATH_BYTES + 1) + " bytes long"), e.getMessage());
        String longest = "/" + "d".repeat(TpmUri.MAX_SOCKET_PATH_BYTES - 1);
        assertEquals(Path.of(longest), TpmUri.parse("swtpm:socket=" + longest).socketPath().orElseThrow());
    }

    @ParameterizedTest
    @ValueSource(strings = {"swtpm:socket=", "swtpm:socket=relative/server.sock", "swtpm:socket=/a.sock,port=2321",
        "swtpm:socket=/a.sock,host=127.0.0.1", "swtpm:socket=/a.sock,socket=/b.sock", "device:/dev/tpm0,socket=/a",
        "swtpm:socket=/a b.sock", "swtpm:socket=/a.sock,timeout=0"})
    void malformedSocketUri_isRejectedWithTheAcceptedForms(String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TpmUri.parse(text));
        assertTrue(e.getMessage().contains("swtpm:socket=/path/to/server.sock"), e.getMessage());
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
