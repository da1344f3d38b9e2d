package io.tpmphone.softphone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The softphone's logging option is measured into PCR 14 as part of the command line: its bytes are a contract with
 * every approved release, so a change has to be deliberate (and announced as a new release to approve).
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class SoftphoneReleaseTest {

    @Test
    void loggingOption_isTheMeasuredValue_andNamesAResourceOfThisModule() throws IOException {
        assertEquals("-Dlogback.configurationFile=tpmphone-softphone-logback.xml", SoftphoneRelease.LOGGING_OPTION,
                "a changed option changes the measured command line of every host: approve a new release first");
        String resource = SoftphoneRelease.LOGGING_OPTION.substring(SoftphoneRelease.LOGGING_OPTION.indexOf('=') + 1);
        try (InputStream in = SoftphoneRelease.class.getResourceAsStream("/" + resource)) {
            assertNotNull(in, resource + " is on softphone-core's class path");
        }
    }
}
