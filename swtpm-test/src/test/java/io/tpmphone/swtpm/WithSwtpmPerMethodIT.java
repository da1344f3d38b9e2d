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
        assertTrue(tpm.isAlive());
        assertTrue(tpm.hasEkCertificates());
        first = tpm;
    }

    @Test
    @Order(2)
    void secondMethodGetsAnotherOne_andTheFirstWasClosed(SwtpmProcess tpm) {
        assertNotNull(first, "runs after the first method");
        assertSame(fromBeforeEach, tpm);
        assertNotSame(first, tpm);
        assertNotEquals(first.pid(), tpm.pid());
        assertNotEquals(first.stateDirectory(), tpm.stateDirectory());
        assertFalse(first.isAlive(), "the first method's swtpm was stopped after it");
        assertFalse(Files.exists(first.stateDirectory()), "and its state deleted");
        assertTrue(tpm.isAlive());
    }
}
