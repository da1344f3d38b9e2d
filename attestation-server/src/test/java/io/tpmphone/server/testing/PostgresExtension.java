package io.tpmphone.server.testing;

import io.tpmphone.swtpm.testing.PostgresServer;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.Extension;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.jupiter.api.extension.TestTemplateInvocationContext;
import org.junit.jupiter.api.extension.TestTemplateInvocationContextProvider;

/**
 * Runs {@link OnEachBackend} tests once per {@link TestBackend.Kind}, resolving {@link TestBackend} parameters, and
 * stops the JVM's {@link PostgresServer} when the test run ends (a shutdown hook does too, if the run is cut short).
 * Also usable on its own ({@code @ExtendWith}) by tests that take a PostgreSQL-only {@link TestBackend} parameter.
 */
public final class PostgresExtension implements TestTemplateInvocationContextProvider, ParameterResolver {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(
            PostgresExtension.class);

    @Override
    public boolean supportsTestTemplate(ExtensionContext context) {
        return context.getTestMethod().map(m -> m.isAnnotationPresent(OnEachBackend.class)).orElse(false);
    }

    @Override
    public Stream<TestTemplateInvocationContext> provideTestTemplateInvocationContexts(ExtensionContext context) {
        return Stream.of(TestBackend.Kind.values()).map(kind -> invocation(context, kind));
    }

    private static TestTemplateInvocationContext invocation(ExtensionContext context, TestBackend.Kind kind) {
        TestBackend backend = new TestBackend(kind, context.getRequiredTestClass().getSimpleName() + "_"
                + context.getRequiredTestMethod().getName(), () -> server(context));
        return new TestTemplateInvocationContext() {
            @Override
            public String getDisplayName(int invocationIndex) {
                return "[" + kind.name().toLowerCase() + "]";
            }

            @Override
            public List<Extension> getAdditionalExtensions() {
                return List.of(new Resolver(backend));
            }
        };
    }

    /** The JVM's PostgreSQL, stopped when the whole test run ends. */
    static PostgresServer server(ExtensionContext context) {
        return context.getRoot().getStore(NAMESPACE).getOrComputeIfAbsent("server", k -> {
            try {
                return new Closing(PostgresServer.shared());
            } catch (Exception e) {
                throw new IllegalStateException("cannot start PostgreSQL for the tests: " + e.getMessage(), e);
            }
        }, Closing.class).server;
    }

    /** A PostgreSQL {@link TestBackend} for a test outside {@link OnEachBackend} (PostgreSQL-only tests). */
    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return parameter.getParameter().getType() == TestBackend.class
                && context.getTestMethod().map(m -> !m.isAnnotationPresent(OnEachBackend.class)).orElse(true);
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        ExtensionContext.Store store = context.getStore(NAMESPACE);
        return store.getOrComputeIfAbsent("backend", k -> new TestBackend(TestBackend.Kind.POSTGRESQL,
                context.getRequiredTestClass().getSimpleName() + "_" + context.getTestMethod().map(
                        java.lang.reflect.Method::getName).orElse("class"), () -> server(context)), TestBackend.class);
    }

    private record Closing(PostgresServer server) implements ExtensionContext.Store.CloseableResource {
        @Override
        public void close() {
            server.close();
        }
    }

    private record Resolver(TestBackend backend) implements ParameterResolver {
        @Override
        public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
            return parameter.getParameter().getType() == TestBackend.class;
        }

        @Override
        public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
            return backend;
        }
    }
}
