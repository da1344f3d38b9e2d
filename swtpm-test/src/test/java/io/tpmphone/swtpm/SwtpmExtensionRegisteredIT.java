package io.tpmphone.swtpm;

import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class SwtpmExtensionRegisteredIT {
    @RegisterExtension
    static final SwtpmExtension SWTPM = SwtpmExtension.builder().withEkCertificate(true).build();

    @Test
    void processAndParameterAreTheClassInstance(SwtpmProcess tpm) {
        assertSame(SWTPM.process(), tpm);
        assertTrue(tpm.isAlive());
        assertTrue(tpm.hasEkCertificates());
        assertTrue(Files.isRegularFile(tpm.caCertificate()));
        assertTrue(Files.isRegularFile(tpm.rootCertificate()));
    }
}
