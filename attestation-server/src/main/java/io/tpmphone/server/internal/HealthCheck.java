package io.tpmphone.server.internal;

import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What {@code GET /health} answers a load balancer: whether this instance can serve requests now — its database
 * answers a query within a deadline and its audit log can commit (its writer runs). At most one database probe runs
 * at a time: while one is stuck (a database that accepts connections but does not answer), later checks wait for the
 * same probe, up to the deadline, instead of taking more connections. Reasons name no database internals (they go
 * to the log). Thread-safe.
 */
public final class HealthCheck implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HealthCheck.class);
    /** How long a check waits for the database before the instance is reported unhealthy. */
    public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(2);

    private final ServerDatabase database;
    private final Supplier<Optional<String>> audit;
    private final Duration deadline;
    private final ExecutorService probes;
    private Future<?> probe; // guarded by this

    /**
     * @param audit why the audit log cannot commit now, or empty when it can
     */
    public HealthCheck(ServerDatabase database, Supplier<Optional<String>> audit, Duration deadline) {
        this.database = Objects.requireNonNull(database, "database");
        this.audit = Objects.requireNonNull(audit, "audit");
        this.deadline = Objects.requireNonNull(deadline, "deadline");
        this.probes = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "health-probe");
            t.setDaemon(true);
            return t;
        });
    }

    /** Empty when this instance can serve; otherwise why not, for the load balancer's operator. */
    public Optional<String> problem() {
        Optional<String> auditProblem = audit.get();
        if (auditProblem.isPresent()) {
            return auditProblem;
        }
        Future<?> running;
        synchronized (this) {
            if (probe == null || probe.isDone()) {
                probe = probes.submit(() -> database.read(c -> {
                    try (Statement s = c.createStatement()) {
                        s.setQueryTimeout((int) Math.max(1, deadline.toSeconds()));
                        s.execute("SELECT 1");
                    }
                    return null;
                }));
            }
            running = probe;
        }
        try {
            running.get(deadline.toMillis(), TimeUnit.MILLISECONDS);
            return Optional.empty();
        } catch (TimeoutException e) {
            return Optional.of("the database did not answer within " + deadline.toMillis() + " ms");
        } catch (ExecutionException e) {
            LOG.warn("health check: the database failed a query: {}", e.getCause() instanceof SQLException sql
                    ? sql.getSQLState() + " " + sql.getMessage() : String.valueOf(e.getCause()));
            return Optional.of("the database cannot be queried");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.of("interrupted");
        } catch (java.util.concurrent.RejectedExecutionException e) {
            return Optional.of("the server is stopping");
        }
    }

    @Override
    public void close() {
        probes.shutdownNow();
    }
}
