package io.tpmphone.swtpm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

@WithSwtpm
class WithSwtpmClassLevelIT {
    private static SwtpmProcess fromBeforeAll;
    private final SwtpmProcess fromConstructor;

    WithSwtpmClassLevelIT(SwtpmProcess tpm) {
        this.fromConstructor = tpm;
    }

    @BeforeAll
    static void rememberTheClassInstance(SwtpmProcess tpm) {
        fromBeforeAll = tpm;
    }

    @Test
    void constructorAndMethodGetTheSameRunningInstance(SwtpmProcess tpm) throws IOException {
        assertSame(fromBeforeAll, tpm);
        assertSame(fromConstructor, tpm);
        assertTrue(tpm.isAlive());
        assertFalse(tpm.hasEkCertificates());
        assertEquals(0, RawTpm.responseCode(RawTpm.exchange(tpm, RawTpm.getRandomCommand(8))));
    }

    @Test
    void everyTestMethodSharesTheClassInstance(SwtpmProcess tpm) {
        assertSame(fromBeforeAll, tpm);
        assertTrue(tpm.isAlive());
    }
}
