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
        assertSame(SWTPM.process(), tpm, "the parameter is the extension's instance");
        assertTrue(tpm.isAlive(), () -> "the class's swtpm runs: " + Seen.swtpm(tpm));
        assertTrue(tpm.hasEkCertificates(), () -> "withEkCertificate(true) gave EK certificates: " + Seen.swtpm(tpm));
        assertTrue(Files.isRegularFile(tpm.caCertificate()),
                () -> "the CA certificate is a file: " + tpm.caCertificate());
        assertTrue(Files.isRegularFile(tpm.rootCertificate()),
                () -> "the root certificate is a file: " + tpm.rootCertificate());
    }
}
