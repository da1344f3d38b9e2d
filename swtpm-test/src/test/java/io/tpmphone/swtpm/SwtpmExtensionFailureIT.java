package io.tpmphone.swtpm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.Event;
import org.junit.platform.testkit.engine.Events;

/** Runs fixture classes (nested, so failsafe does not run them itself) through the Jupiter engine. */
class SwtpmExtensionFailureIT {

    @Test
    void missingSwtpm_failsTheTestsInsteadOfSkippingThem() {
        Events events = execute(MissingSwtpmFixture.class);

        assertEquals(0, events.skipped().count(), () -> "nothing skipped: " + events.list());
        assertEquals(0, events.succeeded().filter(Event.byTestDescriptor(d -> d.isTest())).count(),
                () -> "no test passed: " + events.list());
        Throwable cause = failureCause(events);
        assertTrue(cause instanceof SwtpmNotInstalledException, String.valueOf(cause));
        assertTrue(cause.getMessage().startsWith("swtpm is not installed: run `./tpmphone test`"),
                cause.getMessage());
    }

    @Test
    void failingTest_stillStopsAndDeletesItsSwtpm() {
        FailingTestFixture.seen = null;

        Events events = execute(FailingTestFixture.class);

        assertEquals(1, events.failed().filter(Event.byTestDescriptor(d -> d.isTest())).count(),
                () -> "the fixture's one test failed: " + events.list());
        SwtpmProcess seen = FailingTestFixture.seen;
        assertNotNull(seen, () -> "the fixture ran: " + events.list());
        assertFalse(seen.isAlive(), () -> "the failed test's swtpm was stopped: " + Seen.swtpm(seen));
        assertFalse(Files.exists(seen.stateDirectory()), () -> "and its state deleted: " + Seen.swtpm(seen));
    }

    @Test
    void perMethod_rejectsConstructorInjectionWithAClearMessage() {
        Events events = execute(PerMethodConstructorFixture.class);

        Throwable cause = failureCause(events);
        assertTrue(cause instanceof ParameterResolutionException, String.valueOf(cause));
        assertTrue(cause.getMessage().contains("perMethod = true"), cause.getMessage());
    }

    private static Events execute(Class<?> fixture) {
        return EngineTestKit.engine("junit-jupiter")
                .selectors(selectClass(fixture))
                .execute()
                .allEvents();
    }

    private static Throwable failureCause(Events events) {
        List<Throwable> causes = events.failed().stream()
                .map(event -> event.getPayload(TestExecutionResult.class).orElseThrow())
                .map(result -> result.getThrowable().orElseThrow())
                .toList();
        if (causes.isEmpty()) {
            fail("expected a failure, got " + events.list());
        }
        return causes.get(0);
    }

    static class MissingSwtpmFixture {
        @RegisterExtension
        static final SwtpmExtension SWTPM = SwtpmExtension.builder()
                .swtpmExecutable(Path.of("/nonexistent/swtpm"))
                .build();

        @Test
        void needsTheTpm(SwtpmProcess tpm) {
            assertTrue(tpm.isAlive(), () -> "the injected swtpm runs: " + Seen.swtpm(tpm));
        }
    }

    @WithSwtpm
    static class FailingTestFixture {
        static SwtpmProcess seen;

        @Test
        void fails(SwtpmProcess tpm) {
            seen = tpm;
            fail("on purpose");
        }
    }

    @WithSwtpm(perMethod = true)
    static class PerMethodConstructorFixture {
        PerMethodConstructorFixture(SwtpmProcess tpm) {
            assertNotNull(tpm);
        }

        @Test
        void unreachable() {
        }
    }
}
