package io.tpmphone.server.testing;

import io.tpmphone.swtpm.testing.PostgresServer;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.TestTemplate;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Runs a test once on each storage backend of the server: SQLite (the default) and a real PostgreSQL
 * ({@link PostgresServer}). The test and its {@code @BeforeEach}/{@code @AfterEach} methods take a {@link TestBackend}
 * parameter, the same object within one run; with PostgreSQL it names a database of the run's own.
 */
@Target(ElementType.METHOD)
@Retention(RetentionPolicy.RUNTIME)
@TestTemplate
@ExtendWith(PostgresExtension.class)
public @interface OnEachBackend {
}
