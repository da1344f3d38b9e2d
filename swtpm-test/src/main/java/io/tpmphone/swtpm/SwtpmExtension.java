package io.tpmphone.swtpm;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * JUnit 5 extension that runs a {@link SwtpmProcess} per test class (default) or per test method, and injects it
 * as a parameter of type {@code SwtpmProcess}.
 *
 * <p>Two ways to use it:
 * <pre>{@code
 * @WithSwtpm(ekCertificate = true)                 // declarative; see WithSwtpm
 * class AttestationIT { @Test void x(SwtpmProcess tpm) { ... } }
 *
 * class SealingIT {                                // programmatic
 *     @RegisterExtension
 *     static final SwtpmExtension SWTPM = SwtpmExtension.builder().perMethod(true).build();
 *     @Test void y() { SwtpmProcess tpm = SWTPM.process(); ... }
 * }
 * }</pre>
 *
 * <p>Guarantees: a class-level instance is started before {@code @BeforeAll} methods and closed (stopped, private
 * directories deleted) after the class; a per-method instance is started before {@code @BeforeEach} methods and
 * closed after the method, both also when tests fail. The instances live in the {@link ExtensionContext.Store}, whose
 * closing JUnit guarantees. If swtpm is not installed, {@code beforeAll}/{@code beforeEach} throw
 * {@link SwtpmNotInstalledException}: the tests fail, they are not skipped. With {@code perMethod}, a constructor or
 * {@code @BeforeAll} parameter of type {@code SwtpmProcess} is rejected (there is no instance at class level).
 *
 * <p>Thread-safety: instances are kept per extension context, so parameter injection is safe with parallel test
 * execution. {@link #process()} returns the most recently started instance and is meant for sequential tests.
 */
public final class SwtpmExtension implements BeforeAllCallback, BeforeEachCallback, ParameterResolver {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(SwtpmExtension.class);
    private static final String KEY = "swtpm";

    private final Settings programmatic;
    private volatile SwtpmProcess current;

    /** The instance JUnit creates for {@link WithSwtpm} or {@code @ExtendWith(SwtpmExtension.class)}. */
    public SwtpmExtension() {
        this.programmatic = null;
    }

    private SwtpmExtension(Settings settings) {
        this.programmatic = settings;
    }

    /** A builder for {@code @RegisterExtension} use. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The instance started most recently by this extension object (the class's, or the current method's with
     * {@code perMethod}).
     *
     * @throws IllegalStateException if none is running (e.g. asked for outside a test)
     */
    public SwtpmProcess process() {
        SwtpmProcess instance = current;
        if (instance == null) {
            throw new IllegalStateException("no swtpm has been started by this extension yet: call process() from a "
                    + "test or lifecycle method of a class that registers it");
        }
        return instance;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        if (!settings(context).perMethod()) {
            obtain(context);
        }
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        // Class-level too: an extension registered on an instance field gets no beforeAll call.
        obtain(context);
    }

    @Override
    public boolean supportsParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        return parameterContext.getParameter().getType() == SwtpmProcess.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        if (settings(extensionContext).perMethod() && extensionContext.getTestMethod().isEmpty()) {
            throw new ParameterResolutionException("SwtpmExtension with perMethod = true gives each test method its "
                    + "own swtpm, so there is none for " + parameterContext.getDeclaringExecutable()
                    + ": take SwtpmProcess as a parameter of the test method or of a @BeforeEach method");
        }
        return obtain(extensionContext);
    }

    private SwtpmProcess obtain(ExtensionContext context) {
        Settings settings = settings(context);
        ExtensionContext owner = settings.perMethod() ? context : classContext(context);
        StartedSwtpm started = owner.getStore(NAMESPACE)
                .getOrComputeIfAbsent(KEY, key -> new StartedSwtpm(settings.start()), StartedSwtpm.class);
        current = started.process();
        return started.process();
    }

    private static ExtensionContext classContext(ExtensionContext context) {
        ExtensionContext candidate = context;
        while (candidate.getTestMethod().isPresent() && candidate.getParent().isPresent()) {
            candidate = candidate.getParent().get();
        }
        return candidate;
    }

    private Settings settings(ExtensionContext context) {
        if (programmatic != null) {
            return programmatic;
        }
        Optional<Class<?>> testClass = context.getTestClass();
        for (Class<?> type = testClass.orElse(null); type != null; type = type.getEnclosingClass()) {
            WithSwtpm annotation = type.getAnnotation(WithSwtpm.class);
            if (annotation != null) {
                return new Settings(annotation.ekCertificate(), annotation.platformCertificate(),
                        annotation.perMethod(), null);
            }
        }
        return new Settings(false, false, false, null);
    }

    /** Closes the instance when JUnit closes the store that holds it. */
    private record StartedSwtpm(SwtpmProcess process) implements ExtensionContext.Store.CloseableResource {
        @Override
        public void close() {
            process.close();
        }
    }

    private record Settings(boolean ekCertificate, boolean platformCertificate, boolean perMethod,
                            Path swtpmExecutable) {
        SwtpmProcess start() {
            SwtpmProcess.Builder builder = SwtpmProcess.builder()
                    .withEkCertificate(ekCertificate)
                    .withPlatformCertificate(platformCertificate);
            if (swtpmExecutable != null) {
                builder.swtpmExecutable(swtpmExecutable);
            }
            return builder.start();
        }
    }

    /** Configures a {@link SwtpmExtension} for {@code @RegisterExtension}. Not thread-safe. */
    public static final class Builder {
        private boolean ekCertificate;
        private boolean platformCertificate;
        private boolean perMethod;
        private Path swtpmExecutable;

        private Builder() {
        }

        /** See {@link SwtpmProcess.Builder#withEkCertificate(boolean)}. Default false. */
        public Builder withEkCertificate(boolean ekCertificate) {
            this.ekCertificate = ekCertificate;
            return this;
        }

        /** See {@link SwtpmProcess.Builder#withPlatformCertificate(boolean)}. Default false. */
        public Builder withPlatformCertificate(boolean platformCertificate) {
            this.platformCertificate = platformCertificate;
            return this;
        }

        /** A fresh swtpm for every test method instead of one per class. Default false. */
        public Builder perMethod(boolean perMethod) {
            this.perMethod = perMethod;
            return this;
        }

        /** See {@link SwtpmProcess.Builder#swtpmExecutable(Path)}. */
        public Builder swtpmExecutable(Path swtpmExecutable) {
            this.swtpmExecutable = Objects.requireNonNull(swtpmExecutable, "swtpmExecutable");
            return this;
        }

        /** The extension, to be assigned to a {@code @RegisterExtension} field. */
        public SwtpmExtension build() {
            return new SwtpmExtension(new Settings(ekCertificate, platformCertificate, perMethod, swtpmExecutable));
        }
    }
}
