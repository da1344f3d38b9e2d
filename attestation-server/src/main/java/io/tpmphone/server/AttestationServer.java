package io.tpmphone.server;

import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditException;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.server.internal.AdminTokenFile;
import io.tpmphone.server.internal.ApiException;
import io.tpmphone.server.internal.AuditTrail;
import io.tpmphone.server.internal.ConnectionBounds;
import io.tpmphone.server.internal.RefusalAggregator;
import io.tpmphone.server.internal.EkCertificates;
import io.tpmphone.server.internal.HttpApi;
import io.tpmphone.server.internal.NonceService;
import io.tpmphone.server.internal.Registrar;
import io.tpmphone.server.internal.Registry;
import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.internal.ServerIdentity;
import io.tpmphone.server.internal.V1Routes;
import io.tpmphone.server.internal.console.ConsoleHandler;
import io.tpmphone.server.internal.console.ConsoleIndex;
import io.tpmphone.server.internal.console.PolicyVersions;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.PublicKey;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.SecureRequestCustomizer;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The attestation server: registrar, verifier, policy store and audit log behind a versioned HTTPS API
 * ({@code /v1}, described by {@code /v1/openapi.json}). Everything it decides is in its state directory: server keys
 * ({@code keys/}), the registry ({@code registry.db}) and the audit log ({@code audit.db}), so a restart loses
 * nothing. With {@link Builder#database} the registry and the audit log are in a PostgreSQL database instead, which
 * several instances share (with the same keys): then no instance keeps anything authoritative in memory, and all of
 * them append to one audit chain (docs/operations.md §9). The state directory is made owner-only (0700) and every file in it is created 0600. Start with {@link #builder()}, stop with {@link #close()}. Thread-safe.
 */
public final class AttestationServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AttestationServer.class);

    /**
     * How long an idle HTTPS connection is kept. Longer than an agent's interval (default 60 s; 30 s in the fleet
     * benchmark), so an agent's cycles reuse one TLS session, and longer than the agents' own keep-alive (90 s,
     * {@code AttestationClient.KEEP_ALIVE}), so the client always closes an idle connection first: with both at 30 s
     * (before) a client could write its next request to a connection the server was closing at that moment, and the
     * request was lost ("header parser received no bytes"). An idle connection costs the server a file descriptor
     * and its TLS session state, not a thread.
     */
    public static final Duration CONNECTION_IDLE_TIMEOUT = Duration.ofSeconds(120);
    /** HTTPS connections open at once at most by default ({@link Builder#maxConnections}). */
    public static final int DEFAULT_MAX_CONNECTIONS = ConnectionBounds.DEFAULT_MAX_CONNECTIONS;
    /** How long a connection may stay idle once the server stops (see {@link #close()}). */
    static final Duration SHUTDOWN_IDLE_TIMEOUT = Duration.ofMillis(50);

    private final Server jetty;
    private final ServerConnector connector;
    private final ServerIdentity identity;
    /** The operator's CA-issued TLS certificate and key, or null for the self-signed one in {@code keys/}. */
    private final io.tpmphone.server.internal.TlsCredentials tlsCredentials;
    private final Registry registry;
    private final AuditLog auditLog;
    private final ScheduledExecutorService housekeeping;
    private final String host;

    private final HttpApi api;
    private final RefusalAggregator refusals;
    private final ConsoleIndex consoleIndex;
    private final PolicyVersions policyVersions;
    private final ConsoleHandler console;
    private final io.tpmphone.server.audit.OcsfFileSink ocsfSink;
    private final io.tpmphone.server.internal.HealthCheck health;
    private final io.tpmphone.server.internal.ServerMetrics metrics;
    private final io.tpmphone.server.internal.MetricsEndpoint metricsEndpoint;

    private AttestationServer(Builder b) throws Exception {
        this.host = b.host;
        // 0700 before anything is created in it; an existing state directory open to others is tightened rather
        // than refused: that is what an operator upgrading from a version that made it 0755 would do anyway.
        io.tpmphone.attestation.OwnerOnlyFiles.createPrivateDirectories(b.stateDirectory);
        identity = ServerIdentity.loadOrCreate(b.stateDirectory.resolve("keys"), b.hostNames);
        tlsCredentials = b.tlsCertificateChain == null ? null
                : io.tpmphone.server.internal.TlsCredentials.load(b.tlsCertificateChain, b.tlsPrivateKey);
        Registry opened = openRegistry(b, identity);
        try {
            // On PostgreSQL the audit log is the cluster's one chain, in the registry's database.
            auditLog = opened.shared() ? AuditLog.openShared(opened.database().dataSource(),
                    opened.database().description(), AuditSigner.ecdsa(identity.resultKeyPair()),
                    AuditLog.Options.builder().signerLease(b.auditSignerLease).writerLease(b.auditWriterLease).build())
                    : AuditLog.open(b.stateDirectory.resolve("audit.db"), AuditSigner.ecdsa(identity.resultKeyPair()),
                    AuditLog.Options.defaults());
        } catch (Exception e) {
            opened.close();
            throw e;
        }
        registry = opened;
        metrics = new io.tpmphone.server.internal.ServerMetrics();
        io.tpmphone.server.internal.ServerMetrics m = metrics;
        AuditTrail audit = (type, subject, outcome, detail) -> {
            try {
                long started = System.nanoTime();
                auditLog.append(AuditEntry.of(AuditEventType.valueOf(type), subject, outcome, detail));
                m.auditCommitted(System.nanoTime() - started); // append returns once the record is committed
            } catch (AuditException e) {
                throw new ApiException(503, "audit_unavailable", "the audit log cannot record this decision, so it"
                        + " was not made: " + e.getMessage());
            }
        };
        EkCertificates ekCas = new EkCertificates(b.trustedEkCas, b.clock);
        Registrar registrar = new Registrar(registry, ekCas, audit, b.clock);
        NonceService nonces = NonceService.shared(b.clock, registry.database()).withMetrics(metrics);
        metrics.withScraped(auditLog::size, registry.database()::poolState);
        metrics.withAuditCheckpoints(auditLog::checkpointState, b.clock);
        Duration staleAfter = b.appraisalInterval.multipliedBy(5); // as the console marks a host stale
        Clock clock = b.clock;
        metrics.withStaleHosts(() -> registry.staleHosts(clock.instant().minus(staleAfter)));
        refusals = new RefusalAggregator(audit, b.clock, b.refusalWindow,
                RefusalAggregator.DEFAULT_MAX_KEYS);
        registrar.withRefusals(refusals);
        HttpApi api = new HttpApi(sha256(b.adminToken), b.auditorToken == null ? null : sha256(b.auditorToken),
                refusals);
        this.api = api;
        ConsoleIndex.RecordSource records = new ConsoleIndex.RecordSource() {
            @Override
            public long size() {
                return auditLog.size();
            }

            @Override
            public List<io.tpmphone.server.audit.AuditRecord> records(long fromSeq, int limit)
                    throws AuditException {
                return auditLog.records(fromSeq, limit);
            }
        };
        consoleIndex = ConsoleIndex.open(b.stateDirectory.resolve("console.db"), records);
        V1Routes.PolicyUpdate policyUpdate = V1Routes.install(api, new V1Routes.Services(registry, registrar,
                nonces, auditLog, identity, audit, refusals, b.clock, b.initialPolicy), (sha256, log) -> {
                    try {
                        consoleIndex.archive(sha256, log);
                    } catch (java.sql.SQLException e) {
                        LOG.warn("could not archive an appraised event log for the console: {}", e.toString());
                    }
                }, metrics);
        // For a load balancer: 200 only while the database answers and the audit log can commit; no admin token, no
        // detail beyond the reason.
        health = new io.tpmphone.server.internal.HealthCheck(registry.database(), auditLog::unavailableReason,
                io.tpmphone.server.internal.HealthCheck.DEFAULT_DEADLINE);
        api.route("GET", "/health", false, call -> {
            Optional<String> problem = health.problem();
            if (problem.isPresent()) {
                throw new ApiException(503, "unhealthy", problem.get());
            }
            return Map.of("status", "ok");
        });
        ocsfSink = b.ocsfFile == null ? null : io.tpmphone.server.audit.OcsfFileSink.open(b.ocsfFile,
                io.tpmphone.server.audit.OcsfExport.of(auditLog));
        // Through the registry and the audit log, so that on a shared PostgreSQL database the console shows the
        // cluster's policy versions and signed head, never a stale local SQLite file.
        policyVersions = PolicyVersions.of(registry);
        console = new ConsoleHandler(new ConsoleHandler.Settings(sha256(b.adminToken),
                b.auditorToken == null ? null : sha256(b.auditorToken), b.consoleIdleTimeout,
                b.consoleAbsoluteTimeout, b.consoleMaxSessions, Duration.ofMinutes(5), b.appraisalInterval),
                consoleIndex, new ConsoleHandler.AuditSource() {
                    @Override
                    public long size() {
                        return auditLog.size();
                    }

                    @Override
                    public List<io.tpmphone.server.audit.AuditRecord> records(long fromSeq, int limit)
                            throws AuditException {
                        return auditLog.records(fromSeq, limit);
                    }

                    @Override
                    public List<io.tpmphone.server.audit.AuditCheckpoint> checkpoints() throws AuditException {
                        return auditLog.checkpoints();
                    }

                    @Override
                    public java.util.Optional<io.tpmphone.server.audit.AuditHead> signedHead()
                            throws AuditException {
                        return auditLog.signedHead();
                    }
                }, policyVersions, policyUpdate, audit, refusals, b.clock,
                // On PostgreSQL, console sessions are the cluster's: behind a load balancer any instance serves them.
                registry.shared() ? registry.database() : null);

        QueuedThreadPool threads = new QueuedThreadPool(b.maxThreads, 4);
        threads.setName("attestation-http");
        jetty = new Server(threads);
        SslContextFactory.Server tls = new SslContextFactory.Server();
        if (tlsCredentials != null) {
            tls.setKeyStore(tlsCredentials.keyStore());
            tls.setKeyStorePassword(new String(tlsCredentials.password()));
            tls.setCertAlias(tlsCredentials.alias());
        } else {
            tls.setKeyStore(identity.keyStore());
            tls.setKeyStorePassword(new String(identity.password()));
            tls.setCertAlias(identity.tlsAlias());
        }
        tls.setIncludeProtocols("TLSv1.3", "TLSv1.2");
        HttpConfiguration https = new HttpConfiguration();
        https.setSendServerVersion(false);
        // A fleet's agents each keep one connection open between their cycles (every 30 s by default). Jetty's
        // HTTP/1.1 parser builds a cache of header fields per connection once it has parsed a few requests on it: 1,024
        // entries, a 98 KB char[] table. Measured on the server's live heap with 2,000 connections of three requests
        // each: 116 KB per connection with the cache, 13 KB without (Jetty 12.0.14; on 12.1.14, `bench connections
        // --connections 2000`: 111.7 KB with it, 11.0 KB without). A 1 GB server under 10,000 agents went into back
        // to back full GCs and the whole fleet timed out. Without the cache a header's String is allocated again on
        // each request: a few per request.
        https.setHeaderCacheSize(0);
        SecureRequestCustomizer secure = new SecureRequestCustomizer();
        secure.setSniHostCheck(false);
        https.addCustomizer(secure);
        connector = new ServerConnector(jetty, new SslConnectionFactory(tls, "http/1.1"),
                new HttpConnectionFactory(https));
        connector.setHost(b.host);
        connector.setPort(b.port);
        connector.setIdleTimeout(CONNECTION_IDLE_TIMEOUT.toMillis());
        // On stop, Jetty lets requests in flight finish, then waits for every connection to close, cutting each one's
        // idle timeout to this. Jetty's default (1 s) made every stop with a client's idle keep-alive connection open
        // (an agent's, a console's) last a second waiting for it; a connection with no request has nothing to finish.
        // A request whose body (or answer) is still on the wire when the stop begins counts as idle too and is cut
        // after this: its client sees a failure and retries or fails over; nothing is lost, since nothing is
        // acknowledged before its commit (review of the change, probe on Jetty 12.0.14).
        connector.setShutdownIdleTimeout(SHUTDOWN_IDLE_TIMEOUT.toMillis());
        jetty.addConnector(connector);
        // Connections are the server's memory and file descriptors, and anyone who reaches the port can open them:
        // bounded in all (counted per network endpoint, so a TLS connection once), per client address, and in how
        // long a client may take to send a request (docs/operations.md, "Connections").
        ConnectionBounds bounds = b.connectionBounds();
        ConnectionBounds.hostLimitWarnings(bounds, ConnectionBounds.openFileLimit(), ConnectionBounds.somaxconn())
                .forEach(w -> LOG.warn("{}", w));
        metrics.withConnections(() -> connector.getConnectedEndPoints().size(), bounds.maxConnections(),
                bounds.maxPerAddress());
        // The console answers /ui and /ui/...; everything else falls through to the API. In front of both, the
        // request deadlines.
        jetty.setHandler(bounds.apply(connector, new Handler.Sequence(console, api), metrics));
        jetty.setStopTimeout(5_000);
        metricsEndpoint = b.metricsPort < 0 ? null : io.tpmphone.server.internal.MetricsEndpoint.start(
                new java.net.InetSocketAddress(b.host, b.metricsPort), metrics);
        housekeeping = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "attestation-housekeeping");
            t.setDaemon(true);
            return t;
        });
        housekeeping.scheduleWithFixedDelay(this::flushClocks, 1, 1, TimeUnit.SECONDS);
        housekeeping.scheduleWithFixedDelay(refusals::flushDue, 1, 1, TimeUnit.SECONDS);
        if (registry.shared()) {
            housekeeping.scheduleWithFixedDelay(() -> sweep(nonces), 60, 60, TimeUnit.SECONDS);
        }
        housekeeping.scheduleWithFixedDelay(this::indexForConsole, 0, 1, TimeUnit.SECONDS);
        if (ocsfSink != null) {
            housekeeping.scheduleWithFixedDelay(this::flushOcsf, 1, 1, TimeUnit.SECONDS);
        }
    }

    /**
     * The registry: SQLite in the state directory, or the shared PostgreSQL database, where this instance's keys
     * must be the cluster's.
     */
    static Registry openRegistry(Builder b, ServerIdentity identity) throws Exception {
        if (b.databaseUrl == null) {
            return Registry.open(b.stateDirectory.resolve("registry.db"), b.clock);
        }
        Registry r = Registry.open(ServerDatabase.postgresql(b.databaseUrl, b.databasePassword, b.databasePoolSize),
                b.clock);
        try {
            r.requireClusterKeys(identity.clusterKeyIds());
        } catch (Exception e) {
            r.close();
            throw e;
        }
        return r;
    }

    static void sweep(NonceService nonces) {
        try {
            nonces.sweep();
        } catch (RuntimeException e) {
            LOG.warn("could not sweep expired nonces: {}", e.toString());
        }
    }

    private void flushOcsf() {
        try {
            ocsfSink.flush();
        } catch (Exception e) {
            LOG.warn("could not append the audit log to the OCSF file {}: {}", ocsfSink, e.toString());
        }
    }

    private void indexForConsole() {
        try {
            consoleIndex.sync(20_000);
        } catch (Exception e) {
            LOG.warn("could not index the audit log for the console: {}", e.toString());
        }
    }

    /** Live web-console sessions. */
    public int consoleSessions() {
        return console.sessionCount();
    }

    /** Configuration; only the state directory and the admin token are required. */
    public static Builder builder() {
        return new Builder();
    }

    private AttestationServer start() throws Exception {
        try {
            jetty.start();
        } catch (Exception e) {
            close();
            throw e;
        }
        LOG.info("attestation server listening on {}", uri());
        return this;
    }

    /** The HTTP routes served, each as {@code METHOD path-regex}; {@code GET /v1/openapi.json} describes them. */
    public java.util.List<String> routes() {
        return api.routes();
    }

    public int port() {
        return connector.getLocalPort();
    }

    public URI uri() {
        return URI.create("https://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port());
    }

    /** Where the Prometheus metrics are served ({@code http://HOST:PORT/metrics}), if a metrics port was given. */
    public Optional<URI> metricsUri() {
        if (metricsEndpoint == null) {
            return Optional.empty();
        }
        return Optional.of(URI.create("http://" + (host.contains(":") ? "[" + host + "]" : host) + ":"
                + metricsEndpoint.address().getPort() + "/metrics"));
    }

    /** The TLS certificate clients pin. */
    public X509Certificate tlsCertificate() throws java.security.GeneralSecurityException {
        return tlsCredentials != null ? tlsCredentials.certificate() : identity.tlsCertificate();
    }

    /** The key that signs attestation results and audit checkpoints. */
    public PublicKey resultVerificationKey() throws java.security.GeneralSecurityException {
        return identity.resultCertificate().getPublicKey();
    }

    private void flushClocks() {
        try {
            registry.flushClocks();
        } catch (Exception e) {
            LOG.warn("could not persist TPM clock states: {}", e.toString());
        }
    }

    /** Stops serving, then closes the registry and the audit log (writing a final checkpoint). Idempotent. */
    @Override
    public void close() {
        try {
            jetty.stop();
        } catch (Exception e) {
            LOG.warn("stopping Jetty: {}", e.toString());
        }
        housekeeping.shutdownNow();
        try {
            // A housekeeping task interrupted in a file write would close the OCSF file's channel under us.
            housekeeping.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (health != null) {
            health.close();
        }
        if (metricsEndpoint != null) {
            metricsEndpoint.close();
        }
        refusals.flushAll(); // the counts of the current windows, before the closing checkpoint
        if (ocsfSink != null) {
            // What the last second added, while the log can still be read (after its close the read failed, and the
            // sink lost the last second at every stop); the closing checkpoint follows at the next start.
            flushOcsf();
            try {
                ocsfSink.close();
            } catch (Exception e) {
                LOG.warn("closing the OCSF file: {}", e.toString());
            }
        }
        try {
            auditLog.close(); // first: on PostgreSQL it writes through the registry's pool
        } catch (Exception e) {
            LOG.warn("closing the audit log: {}", e.toString());
        }
        try {
            registry.close();
        } catch (Exception e) {
            LOG.warn("closing the registry: {}", e.toString());
        }
        for (AutoCloseable c : new AutoCloseable[] {consoleIndex, policyVersions}) {
            try {
                c.close();
            } catch (Exception e) {
                LOG.warn("closing the console's stores: {}", e.toString());
            }
        }
        try {
            auditLog.close();
        } catch (Exception e) {
            LOG.warn("closing the audit log: {}", e.toString());
        }
    }

    private static byte[] sha256(String token) {
        try {
            return java.security.MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Server configuration. */
    public static final class Builder {
        private Path stateDirectory;
        private String host = "127.0.0.1";
        private int port;
        private int metricsPort = -1;
        private String adminToken;
        private final List<X509Certificate> trustedEkCas = new ArrayList<>();
        private final List<String> hostNames = new ArrayList<>();
        private Clock clock = Clock.systemUTC();
        private Duration refusalWindow = RefusalAggregator.DEFAULT_WINDOW;
        private String initialPolicy;
        private int maxThreads = 64;
        private String databaseUrl;
        private char[] databasePassword;
        private int databasePoolSize = ServerDatabase.DEFAULT_POOL_SIZE;
        private String auditorToken;
        private Duration consoleIdleTimeout = Duration.ofMinutes(15);
        private Duration consoleAbsoluteTimeout = Duration.ofHours(8);
        private int consoleMaxSessions = 256;
        private Duration appraisalInterval = Duration.ofSeconds(30);
        private Path ocsfFile;
        private Path tlsCertificateChain;
        private Path tlsPrivateKey;
        private Duration auditSignerLease = AuditLog.Options.DEFAULT_SIGNER_LEASE;
        private Duration auditWriterLease = AuditLog.Options.DEFAULT_WRITER_LEASE;
        private int maxConnections = ConnectionBounds.DEFAULT_MAX_CONNECTIONS;
        private Integer maxConnectionsPerAddress;
        private int acceptQueueSize = ConnectionBounds.DEFAULT_ACCEPT_QUEUE;
        private Duration requestTimeout = ConnectionBounds.DEFAULT_REQUEST_TIMEOUT;

        private Builder() {
        }

        /**
         * HTTPS connections open at once at most (default {@value ConnectionBounds#DEFAULT_MAX_CONNECTIONS}: 10,000
         * agents, each keeping one between its cycles, and half as many again; about 11 KB of heap each). Counted per
         * network connection. At the bound the server stops accepting, so new connections wait in the accept queue
         * ({@link #acceptQueueSize}), and open connections idle for the {@link #requestTimeout} are closed to make
         * room; below it again, the 120 s idle timeout is back.
         *
         * @throws IllegalArgumentException outside 1..1,000,000
         */
        public Builder maxConnections(int n) {
            if (n < 1 || n > 1_000_000) {
                throw new IllegalArgumentException("the connection bound must be 1..1000000, got " + n);
            }
            this.maxConnections = n;
            return this;
        }

        /**
         * HTTPS connections open at once from one client address at most (IPv6: one /64), so one address cannot take
         * the slots agents and the console need; more are closed as soon as they are accepted. Default
         * {@value ConnectionBounds#DEFAULT_MAX_PER_ADDRESS}, or {@link #maxConnections} if that is lower. Behind a NAT
         * or a load balancer that does not keep client addresses, all its clients share one address: raise this to
         * as many as come through it (up to {@link #maxConnections}).
         *
         * @throws IllegalArgumentException below 1; above {@link #maxConnections} it is refused at {@link #start}
         */
        public Builder maxConnectionsPerAddress(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("the per-address connection bound must be >= 1, got " + n);
            }
            this.maxConnectionsPerAddress = n;
            return this;
        }

        /**
         * Connections the kernel queues for the server before it accepts them (the listen backlog; default
         * {@value ConnectionBounds#DEFAULT_ACCEPT_QUEUE}): where new connections wait while the server is at
         * {@link #maxConnections} or busy. Linux caps it at {@code net.core.somaxconn} (a start-up WARN says so);
         * when it is full the kernel drops TCP handshakes and clients retransmit until their timeouts.
         *
         * @throws IllegalArgumentException outside 1..65535
         */
        public Builder acceptQueueSize(int n) {
            if (n < 1 || n > 65_535) {
                throw new IllegalArgumentException("the accept queue must be 1..65535, got " + n);
            }
            this.acceptQueueSize = n;
            return this;
        }

        /**
         * How long a client has to send a request (default 15 s, the agent's own request timeout): on a new
         * connection the TLS handshake and the first request's header, then each request's body from its header;
         * after a request, bytes that make no next request within the idle timeout plus this. A connection that
         * misses one is closed (slowloris: a request sent a byte at a time would otherwise hold a connection, and
         * for a body a server thread, however long). Time the server takes to answer never counts.
         *
         * @throws IllegalArgumentException outside 1 s..10 min
         */
        public Builder requestTimeout(Duration timeout) {
            Objects.requireNonNull(timeout, "timeout");
            if (timeout.compareTo(Duration.ofSeconds(1)) < 0 || timeout.compareTo(Duration.ofMinutes(10)) > 0) {
                throw new IllegalArgumentException("the request timeout must be 1 s..10 min, got " + timeout);
            }
            this.requestTimeout = timeout;
            return this;
        }

        ConnectionBounds connectionBounds() {
            int perAddress = maxConnectionsPerAddress != null ? maxConnectionsPerAddress
                    : Math.min(ConnectionBounds.DEFAULT_MAX_PER_ADDRESS, maxConnections);
            return new ConnectionBounds(maxConnections, perAddress, acceptQueueSize, requestTimeout);
        }

        /**
         * Serves TLS with this certificate chain (PEM, the server's certificate first, then its CA's) and private key
         * (PEM, unencrypted, read under the admin token file's rules), e.g. issued by a private CA that agents trust
         * with {@code --server-ca}, so that every instance of a cluster has its own certificate for its own name.
         * Without it the server uses the self-signed certificate in {@code keys/} that agents pin. Checked at
         * {@link #start}: the key must be the certificate's, and the certificate valid now.
         */
        public Builder tlsCertificate(Path chainPem, Path privateKeyPem) {
            this.tlsCertificateChain = Objects.requireNonNull(chainPem, "chainPem");
            this.tlsPrivateKey = Objects.requireNonNull(privateKeyPem, "privateKeyPem");
            return this;
        }

        /**
         * Keeps the registry (hosts, TPM states, nonces, policies, enrollment tokens and challenges) in the PostgreSQL
         * database at {@code jdbcUrl} ({@code jdbc:postgresql://HOST:PORT/DB?user=USER}) instead of SQLite in the
         * state directory, so that several instances can serve the same hosts (docs/operations.md). Every instance
         * needs the same keys (copy {@code keys/}); an instance with other keys refuses to start. The password comes
         * from {@link #databasePasswordFile} or what the driver finds itself ({@code ~/.pgpass}, {@code PGPASSFILE}).
         *
         * @throws IllegalArgumentException if it is not a {@code jdbc:postgresql://} URL
         */
        public Builder database(String jdbcUrl) {
            ServerDatabase.requirePostgresqlUrl(jdbcUrl);
            this.databaseUrl = jdbcUrl;
            return this;
        }

        /**
         * Also appends the audit log to {@code file} as OCSF JSON lines for a SIEM (docs/audit.md, "SIEM export"),
         * every second and at close, resuming where the file ends (created 0600).
         */
        public Builder ocsfFile(Path file) {
            this.ocsfFile = Objects.requireNonNull(file, "file").toAbsolutePath();
            return this;
        }

        /**
         * The database password, read from {@code file} under the same rules as the admin token file (owner-only,
         * in directories others cannot change; docs/operations.md). Trailing white space is ignored.
         */
        public Builder databasePasswordFile(Path file) throws java.io.IOException {
            byte[] content = io.tpmphone.attestation.OwnerOnlyFiles.readPrivateFile(
                    Objects.requireNonNull(file, "file"), 4096);
            try {
                String text = new String(content, StandardCharsets.UTF_8).strip();
                if (text.isEmpty()) {
                    throw new java.io.IOException(file + " is empty: put the database password in it");
                }
                this.databasePassword = text.toCharArray();
            } finally {
                java.util.Arrays.fill(content, (byte) 0);
            }
            return this;
        }

        /**
         * With {@link #database}: how long the shared audit chain's checkpoint signer lease lasts without renewal,
         * that is how soon another instance takes over time checkpoints and head refreshes after the signer died
         * (default 3 s, 2 s to 5 min; docs/operations.md). Give every instance the same value.
         *
         * @throws IllegalArgumentException outside those bounds
         */
        public Builder auditSignerLease(Duration lease) {
            AuditLog.Options.builder().signerLease(lease);
            this.auditSignerLease = lease;
            return this;
        }

        /**
         * With {@link #database}: how long an instance's audit writer lease lasts without renewal, that is how long
         * a dead instance still counts as a writer, and the longest the last instance to stop waits for that before
         * it signs the closing checkpoint (default 10 s, 4 s to 5 min; docs/operations.md). Give every instance the
         * same value.
         *
         * @throws IllegalArgumentException outside those bounds
         */
        public Builder auditWriterLease(Duration lease) {
            AuditLog.Options.builder().writerLease(lease);
            this.auditWriterLease = lease;
            return this;
        }

        /** Connections to PostgreSQL this instance keeps at most (default {@value ServerDatabase#DEFAULT_POOL_SIZE}). */
        public Builder databasePoolSize(int n) {
            if (n < 2 || n > 1000) {
                throw new IllegalArgumentException("the database pool size must be 2..1000, got " + n);
            }
            this.databasePoolSize = n;
            return this;
        }

        /**
         * The read-only auditor credential of the web console (at least 16 characters): it signs in to every view
         * but can change nothing. Optional; without it only the admin token signs in. Only its SHA-256 is kept.
         */
        public Builder auditorToken(String token) {
            if (token == null || token.length() < AdminTokenFile.MIN_LENGTH) {
                throw new IllegalArgumentException("the auditor credential must have at least "
                        + AdminTokenFile.MIN_LENGTH + " characters");
            }
            this.auditorToken = token;
            return this;
        }

        /**
         * The auditor credential from {@code file}, under the same rules as {@link #adminTokenFile} (only this user
         * or root can change it or what leads to it, nobody else can read it; with {@code generate}, a random one is
         * written there first if nothing is at that name).
         */
        public Builder auditorTokenFile(Path file, boolean generate) throws java.io.IOException {
            return auditorToken(AdminTokenFile.load(file, generate));
        }

        /**
         * When a console session ends without a sign-out: after {@code idle} without a request, and at the latest
         * {@code absolute} after its sign-in (defaults 15 minutes and 8 hours).
         */
        public Builder consoleSessionTimeouts(Duration idle, Duration absolute) {
            if (idle.isNegative() || idle.isZero() || absolute.compareTo(idle) < 0) {
                throw new IllegalArgumentException("console timeouts must be positive with idle <= absolute");
            }
            this.consoleIdleTimeout = idle;
            this.consoleAbsoluteTimeout = absolute;
            return this;
        }

        /** Most console sessions kept at once (default 256); a sign-in beyond is refused. */
        public Builder consoleMaxSessions(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("console sessions must be >= 1, got " + n);
            }
            this.consoleMaxSessions = n;
            return this;
        }

        /**
         * How often hosts are expected to be appraised (default 30 s, the agent's default): the console marks a host
         * stale after five intervals without an appraisal.
         */
        public Builder appraisalInterval(Duration interval) {
            if (interval.isNegative() || interval.isZero()) {
                throw new IllegalArgumentException("the appraisal interval must be positive");
            }
            this.appraisalInterval = interval;
            return this;
        }

        /**
         * Where keys, registry and audit log live (created 0700 if absent; an existing one loses group and other
         * permissions). Required.
         */
        public Builder stateDirectory(Path dir) {
            this.stateDirectory = Objects.requireNonNull(dir, "dir").toAbsolutePath();
            return this;
        }

        /** Address and port to listen on; port 0 picks a free one. Default 127.0.0.1:0. */
        public Builder listen(String bindHost, int bindPort) {
            this.host = Objects.requireNonNull(bindHost, "bindHost");
            if (bindPort < 0 || bindPort > 65535) {
                throw new IllegalArgumentException("port must be 0..65535, got " + bindPort);
            }
            this.port = bindPort;
            return this;
        }

        /**
         * Serve Prometheus metrics over plain HTTP at {@code http://HOST:port/metrics} on the listen address (port 0:
         * a free one). Default: no metrics endpoint. Metrics are per instance and name no host, key or nonce.
         */
        public Builder metricsPort(int metricsPort) {
            if (metricsPort < 0 || metricsPort > 65535) {
                throw new IllegalArgumentException("metrics port must be 0..65535, got " + metricsPort);
            }
            this.metricsPort = metricsPort;
            return this;
        }

        /** The admin bearer token (at least 16 characters). Required. Only its SHA-256 is kept. */
        public Builder adminToken(String token) {
            if (token == null || token.length() < 16) {
                throw new IllegalArgumentException("the admin token must have at least 16 characters");
            }
            this.adminToken = token;
            return this;
        }

        /**
         * The admin bearer token from {@code file}, as {@code tpmphone server --admin-token-file} gives it. Whoever can
         * choose the file's content would be the server's admin, so it is refused, saying what to do, unless only the
         * user the server runs as and root can change it and everything that leads to it, and nobody else can read it:
         * a regular file (links followed only if this user or root made them, in directories others cannot write)
         * owned by this user or root, nothing for others, no group write, group read only for a group the server is
         * in or root's, and every directory from / down this user's or root's and not writable by others
         * (docs/operations.md). With {@code generate}, a random token is written there first if nothing is at that
         * name (0600; a missing directory 0700), never through a link. Only the token's SHA-256 is kept.
         *
         * @throws java.nio.file.NoSuchFileException if there is no such file and {@code generate} is not set
         * @throws java.io.IOException if the file is refused or holds no token of at least 16 characters
         */
        public Builder adminTokenFile(Path file, boolean generate) throws java.io.IOException {
            return adminToken(AdminTokenFile.load(file, generate));
        }

        /** A TPM manufacturer CA certificate (root or intermediate) trusted for EK certificates. */
        public Builder trustEkCa(X509Certificate ca) {
            trustedEkCas.add(Objects.requireNonNull(ca, "ca"));
            return this;
        }

        /** A host name or IP address to put in the TLS certificate when it is first created. */
        public Builder tlsHostName(String name) {
            hostNames.add(Objects.requireNonNull(name, "name"));
            return this;
        }

        /** The policy to use when the registry holds none with a higher version (JSON). */
        public Builder policy(String json) {
            this.initialPolicy = Objects.requireNonNull(json, "json");
            return this;
        }

        /**
         * How long refusals that anyone can provoke are counted per client and check before one summary record
         * (default {@link RefusalAggregator#DEFAULT_WINDOW}); zero records every refusal on its own, which lets a
         * flood grow the audit log: for tests that look at each refusal.
         */
        public Builder refusalWindow(Duration window) {
            if (window.isNegative()) {
                throw new IllegalArgumentException("the refusal window must not be negative: " + window);
            }
            this.refusalWindow = window;
            return this;
        }

        public Builder clock(Clock c) {
            this.clock = Objects.requireNonNull(c, "clock");
            return this;
        }

        public Builder maxThreads(int n) {
            this.maxThreads = n;
            return this;
        }

        /** Opens the state, binds the port and starts serving. */
        public AttestationServer start() throws Exception {
            if (stateDirectory == null || adminToken == null) {
                throw new IllegalStateException("stateDirectory and adminToken are required");
            }
            connectionBounds(); // a per-address bound above the total is refused before anything is opened
            return new AttestationServer(this).start();
        }
    }
}
