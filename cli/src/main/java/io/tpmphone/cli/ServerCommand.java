package io.tpmphone.cli;

import io.tpmphone.cli.internal.Pem;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.server.audit.AuditLog;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** Runs the attestation server until interrupted. */
@Command(name = "server", mixinStandardHelpOptions = true,
        description = {"Run the attestation server (HTTPS, /v1 API): registrar, verifier, policy, audit log.",
                "Keys, registry and audit database live in --state; a restart loses nothing.",
                "With --database, registry and audit log are in PostgreSQL, shared by several instances."},
        footer = {"", "Example:", "  tpmphone server --state /var/lib/tpmphone-server --listen 0.0.0.0:8443 \\",
                "      --admin-token-file /etc/tpmphone/admin.token --generate-admin-token \\",
                "      --ek-ca /etc/tpmphone/tpm-vendor-ca.pem --policy /etc/tpmphone/policy.json"})
final class ServerCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    @Option(names = "--state", required = true, description = "state directory (keys, registry.db, audit.db)")
    Path state;
    @Option(names = "--listen", defaultValue = "127.0.0.1:8443", description = "host:port (default ${DEFAULT-VALUE})")
    String listen;
    @Option(names = "--admin-token-file", required = true, description = "file holding the admin bearer token")
    Path adminTokenFile;
    @Option(names = "--generate-admin-token", description = "create the admin token file if it does not exist")
    boolean generate;
    @Option(names = "--auditor-token-file", description = "file holding the web console's read-only auditor"
            + " credential (same file rules as the admin token)")
    Path auditorTokenFile;
    @Option(names = "--generate-auditor-token", description = "create the auditor credential file if it does not"
            + " exist")
    boolean generateAuditor;
    @Option(names = "--ocsf-file", paramLabel = "FILE", description = "also append the audit log to FILE as OCSF JSON"
            + " lines for a SIEM (resumes where the file ends; created 0600)")
    Path ocsfFile;
    @Option(names = "--ek-ca", description = "trusted TPM manufacturer CA certificate(s), PEM; repeatable")
    List<Path> ekCas = new ArrayList<>();
    @Option(names = "--policy", description = "policy JSON to load if the registry holds no newer version")
    Path policy;
    @Option(names = "--tls-name", description = "extra host name/IP for the TLS certificate made on first start")
    List<String> tlsNames = new ArrayList<>();
    @Option(names = "--tls-cert", paramLabel = "PEM", description = "serve this TLS certificate chain (the server's"
            + " certificate first, then its CA's) instead of the self-signed one in STATE/keys; agents trust the CA"
            + " with --server-ca. Needs --tls-key")
    Path tlsCert;
    @Option(names = "--tls-key", paramLabel = "PEM", description = "the private key of --tls-cert (PEM, unencrypted;"
            + " owner-only, the admin token file's rules)")
    Path tlsKey;
    @Option(names = "--database", paramLabel = "URL", description = {"keep the registry in PostgreSQL, shared by "
            + "several server instances: jdbc:postgresql://HOST:PORT/DB?user=USER (default: SQLite in --state)",
            "every instance needs the same keys/ (docs/operations.md)"})
    String database;
    @Option(names = "--database-password-file", paramLabel = "FILE", description = "the database password (owner-only"
            + " file, the admin token file's rules); else ~/.pgpass or PGPASSFILE")
    Path databasePasswordFile;
    @Option(names = "--database-pool", paramLabel = "N", defaultValue = "10", description = "PostgreSQL connections"
            + " of this instance (default ${DEFAULT-VALUE})")
    int databasePool;
    @Option(names = "--audit-signer-lease", paramLabel = "SECONDS", description = "with --database: how soon another"
            + " instance takes over signing audit checkpoints after the signer died (2..300, default 3;"
            + " docs/operations.md §9)")
    Integer auditSignerLease;
    @Option(names = "--audit-writer-lease", paramLabel = "SECONDS", description = "with --database: how long a dead"
            + " instance still counts as an audit writer, the longest the last instance to stop waits to sign the"
            + " closing checkpoint (4..300, default 10; docs/operations.md §9)")
    Integer auditWriterLease;
    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "15000", description = "HTTPS connections"
            + " open at once at most (each agent keeps one, about 11 KB of heap each; at the bound new ones wait in the"
            + " accept queue and idle ones close after --request-timeout); default ${DEFAULT-VALUE}")
    int maxConnections;
    @Option(names = "--max-connections-per-address", paramLabel = "N", description = "HTTPS connections open at once"
            + " from one client address (IPv6: one /64); more are closed at accept. Behind a NAT or a load balancer"
            + " that hides client addresses, raise it (docs/operations.md). Default 1000, or --max-connections if"
            + " lower")
    Integer maxConnectionsPerAddress;
    @Option(names = "--accept-queue", paramLabel = "N", defaultValue = "1024", description = "connections the kernel"
            + " queues before the server accepts them (listen backlog, capped by net.core.somaxconn); default"
            + " ${DEFAULT-VALUE}")
    int acceptQueue;
    @Option(names = "--request-timeout", paramLabel = "SECONDS", defaultValue = "15", description = "how long a client"
            + " has for a request's header (with the TLS handshake, on a new connection) and, apart, its body; a"
            + " connection that misses it is closed (slowloris). 1..600, default ${DEFAULT-VALUE}")
    int requestTimeout;
    @Option(names = "--metrics-port", paramLabel = "PORT", description = "serve Prometheus metrics over plain HTTP at"
            + " http://LISTEN-HOST:PORT/metrics (docs/operations.md §11); default: none")
    Integer metricsPort;

    @Override
    public Integer call() throws Exception {
        int colon = listen.lastIndexOf(':');
        int port = colon <= 0 ? -1 : parsePort(listen.substring(colon + 1));
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("--listen must be host:port with a port 1..65535, e.g. 127.0.0.1:8443,"
                    + " got '" + listen + "'");
        }
        if (database == null && (auditSignerLease != null || auditWriterLease != null)) {
            throw new IllegalArgumentException("--audit-signer-lease and --audit-writer-lease need --database (a"
                    + " SQLite audit log has one writer and no leases)");
        }
        java.time.Duration signerLease = auditSignerLease == null ? null
                : leaseSeconds("--audit-signer-lease", auditSignerLease, 2);
        java.time.Duration writerLease = auditWriterLease == null ? null
                : leaseSeconds("--audit-writer-lease", auditWriterLease, 4);
        if ((signerLease != null || writerLease != null)
                && (writerLease == null ? AuditLog.Options.DEFAULT_WRITER_LEASE : writerLease)
                .compareTo(signerLease == null ? AuditLog.Options.DEFAULT_SIGNER_LEASE : signerLease) <= 0) {
            throw new IllegalArgumentException("--audit-writer-lease (default 10) must be longer than"
                    + " --audit-signer-lease (default 3)");
        }
        AttestationServer.Builder b = AttestationServer.builder();
        connectionBounds(b); // checked before the state directory or any file is touched
        b.stateDirectory(state)
                .listen(listen.substring(0, colon), port)
                .adminTokenFile(adminTokenFile, generate); // refuses a link or a file others can read or own
        if (auditorTokenFile != null) {
            b.auditorTokenFile(auditorTokenFile, generateAuditor); // the admin token's rules
        } else if (generateAuditor) {
            throw new IllegalArgumentException("--generate-auditor-token needs --auditor-token-file FILE");
        }
        if (ocsfFile != null) {
            b.ocsfFile(ocsfFile);
        }
        for (Path ca : ekCas) {
            for (X509Certificate c : Pem.certificates(ca)) {
                b.trustEkCa(c);
            }
        }
        if (policy != null) {
            b.policy(Files.readString(policy, StandardCharsets.UTF_8));
        }
        tlsNames.forEach(b::tlsHostName);
        if ((tlsCert == null) != (tlsKey == null)) {
            throw new IllegalArgumentException("--tls-cert and --tls-key go together: give the certificate chain and"
                    + " its private key");
        }
        if (tlsCert != null) {
            b.tlsCertificate(tlsCert, tlsKey);
        }
        if (database != null) {
            b.database(database).databasePoolSize(databasePool);
            if (databasePasswordFile != null) {
                b.databasePasswordFile(databasePasswordFile);
            }
            if (signerLease != null) {
                b.auditSignerLease(signerLease);
            }
            if (writerLease != null) {
                b.auditWriterLease(writerLease);
            }
        } else if (databasePasswordFile != null) {
            throw new IllegalArgumentException("--database-password-file needs --database (SQLite has no password)");
        }
        if (metricsPort != null) {
            if (metricsPort < 1 || metricsPort > 65535 || metricsPort == port) {
                throw new IllegalArgumentException("--metrics-port must be 1..65535 and not the --listen port, got "
                        + metricsPort);
            }
            b.metricsPort(metricsPort);
        }
        CountDownLatch stopped = new CountDownLatch(1);
        AttestationServer server = b.start();
        // The JVM does not wait for main after SIGINT: the hook itself closes the server (final audit checkpoint).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            stopped.countDown();
        }, "server-shutdown"));
        String trust = tlsCert != null ? "TLS certificate " + tlsCert + ": agents trust its CA with --server-ca"
                : "TLS certificate for agents to pin: " + state.resolve("keys").resolve("tls-cert.pem");
        spec.commandLine().getOut().println("attestation server on " + server.uri() + " (" + trust
                + "; web console: " + server.uri() + "/ui/" + server.metricsUri().map(u -> "; metrics: " + u)
                .orElse("") + "); Ctrl-C stops it");
        spec.commandLine().getOut().flush();
        stopped.await();
        return 0;
    }

    private void connectionBounds(AttestationServer.Builder b) {
        if (maxConnections < 1 || maxConnections > 1_000_000) {
            throw new IllegalArgumentException("--max-connections must be 1 to 1000000, got " + maxConnections);
        }
        b.maxConnections(maxConnections);
        if (maxConnectionsPerAddress != null) {
            if (maxConnectionsPerAddress < 1 || maxConnectionsPerAddress > maxConnections) {
                throw new IllegalArgumentException("--max-connections-per-address must be 1 to --max-connections ("
                        + maxConnections + "), got " + maxConnectionsPerAddress);
            }
            b.maxConnectionsPerAddress(maxConnectionsPerAddress);
        }
        if (acceptQueue < 1 || acceptQueue > 65_535) {
            throw new IllegalArgumentException("--accept-queue must be 1 to 65535, got " + acceptQueue);
        }
        b.acceptQueueSize(acceptQueue);
        if (requestTimeout < 1 || requestTimeout > 600) {
            throw new IllegalArgumentException("--request-timeout must be 1 to 600 seconds, got " + requestTimeout);
        }
        b.requestTimeout(java.time.Duration.ofSeconds(requestTimeout));
    }

    private static int parsePort(String text) {
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static java.time.Duration leaseSeconds(String option, int seconds, int min) {
        if (seconds < min || seconds > 300) {
            throw new IllegalArgumentException(option + " must be " + min + " to 300 seconds, got " + seconds);
        }
        return java.time.Duration.ofSeconds(seconds);
    }
}
