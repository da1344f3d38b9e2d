package io.tpmphone.swtpm;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

@WithSwtpm(perMethod = true, ekCertificate = true)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class WithSwtpmPerMethodIT {
    private static SwtpmProcess first;
    private SwtpmProcess fromBeforeEach;

    @BeforeEach
    void rememberTheMethodInstance(SwtpmProcess tpm) {
        fromBeforeEach = tpm;
    }

    @Test
    @Order(1)
    void firstMethodGetsAnInstanceWithEkCertificates(SwtpmProcess tpm) {
        assertSame(fromBeforeEach, tpm);
        assertTrue(tpm.isAlive(), () -> "the method's swtpm runs: " + Seen.swtpm(tpm));
        assertTrue(tpm.hasEkCertificates(), () -> "ekCertificate = true gave EK certificates: " + Seen.swtpm(tpm));
        first = tpm;
    }

    @Test
    @Order(2)
    void secondMethodGetsAnotherOne_andTheFirstWasClosed(SwtpmProcess tpm) {
        assertNotNull(first, "runs after the first method");
        assertSame(fromBeforeEach, tpm);
        assertNotSame(first, tpm, () -> "a new instance per method, got the first one again: " + tpm);
        assertNotEquals(first.pid(), tpm.pid(), () -> "a new process per method: " + first + " and " + tpm);
        assertNotEquals(first.stateDirectory(), tpm.stateDirectory(), "a new state directory per method");
        assertFalse(first.isAlive(), () -> "the first method's swtpm was stopped after it: " + Seen.swtpm(first));
        assertFalse(Files.exists(first.stateDirectory()), () -> "and its state deleted: " + first.stateDirectory());
        assertTrue(tpm.isAlive(), () -> "the second method's swtpm runs: " + Seen.swtpm(tpm));
    }
}
