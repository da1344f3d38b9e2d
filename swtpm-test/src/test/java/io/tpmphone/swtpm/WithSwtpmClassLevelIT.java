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
        assertTrue(tpm.isAlive(), () -> "the class's swtpm runs: " + Seen.swtpm(tpm));
        assertFalse(tpm.hasEkCertificates(),
                () -> "@WithSwtpm makes no EK certificates by default: " + Seen.swtpm(tpm));
        byte[] response = RawTpm.exchange(tpm, RawTpm.getRandomCommand(8));
        assertEquals(0, RawTpm.responseCode(response), () -> "TPM2_GetRandom answered with TPM_RC_SUCCESS; response "
                + java.util.HexFormat.of().formatHex(response) + "; " + Seen.swtpm(tpm));
    }

    @Test
    void everyTestMethodSharesTheClassInstance(SwtpmProcess tpm) {
        assertSame(fromBeforeAll, tpm);
        assertTrue(tpm.isAlive(), () -> "the class's swtpm still runs: " + Seen.swtpm(tpm));
    }
}
