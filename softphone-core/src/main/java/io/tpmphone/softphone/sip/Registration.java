package io.tpmphone.softphone.sip;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.time.Instant;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.function.Supplier;

/**
 * The binding of this phone's contact to an address of record at a registrar (RFC 3261 §10), kept fresh by
 * re-REGISTERing at half the granted time and ended by {@link SipPhone#unregister}. Thread-safe.
 */
public final class Registration {
    /** Where a registration is. */
    public enum State { REGISTERING, REGISTERED, FAILED, UNREGISTERED }

    /**
     * Who we register as and where: {@code aor} ({@code sips:alice@example.test}), the registrar's address (also the
     * outbound proxy for calls placed through it), the transport to it ({@code tls}, {@code tcp} or {@code udp}),
     * digest credentials, and the registration time we ask for. The password supplier is asked for every answer to a
     * challenge; the array it returns is wiped after use.
     */
    public record Account(String aor, InetSocketAddress registrar, String transport, String username,
                          Supplier<char[]> password, Duration expires) {
        public Account {
            Objects.requireNonNull(aor, "aor");
            Objects.requireNonNull(registrar, "registrar");
            Objects.requireNonNull(username, "username");
            Objects.requireNonNull(password, "password");
            Objects.requireNonNull(expires, "expires");
            transport = transport.toLowerCase(Locale.ROOT);
            if (!transport.equals("tls") && !transport.equals("tcp") && !transport.equals("udp")) {
                throw new IllegalArgumentException("transport must be tls, tcp or udp, not " + transport);
            }
            if (expires.isNegative() || expires.isZero()) {
                throw new IllegalArgumentException("expires must be positive");
            }
        }

        @Override
        public String toString() {
            // never the password
            return "Account[" + aor + " via " + transport + ":" + registrar + " as " + username + "]";
        }
    }

    private final Account account;
    private final String callId;
    private final CompletableFuture<Registration> first = new CompletableFuture<>();
    private volatile State state = State.REGISTERING;
    private volatile String reason = "";
    private volatile Instant expiresAt;
    private volatile Duration granted = Duration.ZERO;
    private volatile int refreshes;
    private volatile String digest = "";
    private volatile int failures;
    private long cseq;
    private ScheduledFuture<?> next;

    Registration(Account account, String callId) {
        this.account = account;
        this.callId = callId;
    }

    public Account account() {
        return account;
    }

    public String callId() {
        return callId;
    }

    public State state() {
        return state;
    }

    /** Why the registration is in its state (e.g. the registrar's refusal). */
    public String reason() {
        return reason;
    }

    /** The registration time the registrar granted; zero until registered. */
    public Duration granted() {
        return granted;
    }

    public Optional<Instant> expiresAt() {
        return Optional.ofNullable(expiresAt);
    }

    /** Successful re-REGISTERs after the first. */
    public int refreshes() {
        return refreshes;
    }

    /** Completes with this registration when the first REGISTER succeeded or failed. */
    public CompletableFuture<Registration> firstOutcome() {
        return first;
    }

    synchronized long nextCseq() {
        return ++cseq;
    }

    synchronized void schedule(ScheduledFuture<?> f) {
        if (next != null) {
            next.cancel(false);
        }
        next = f;
    }

    synchronized void cancelSchedule() {
        schedule(null);
    }

    /** The digest algorithm of the accepted REGISTER ({@code SHA-256}, {@code MD5}...), empty if none was asked. */
    public Optional<String> digestAlgorithm() {
        return digest.isEmpty() ? Optional.empty() : Optional.of(digest);
    }

    synchronized void registered(Duration granted, Instant now, String digestAlgorithm) {
        this.digest = digestAlgorithm == null ? "" : digestAlgorithm;
        if (state == State.REGISTERED) {
            refreshes++;
        }
        this.granted = granted;
        this.expiresAt = now.plus(granted);
        this.state = State.REGISTERED;
        this.reason = "registered for " + granted.toSeconds() + " s"
                + (digest.isEmpty() ? "" : ", digest " + digest);
        this.failures = 0;
        first.complete(this);
    }

    /** Returns how many failures in a row there were, this one included. */
    synchronized int failed(String why) {
        this.state = State.FAILED;
        this.reason = why;
        first.complete(this);
        return ++failures;
    }

    synchronized void unregistered(String why) {
        this.state = State.UNREGISTERED;
        this.reason = why;
        this.expiresAt = null;
        first.complete(this);
    }

    @Override
    public String toString() {
        return "Registration[" + account.aor() + " " + state + ": " + reason + "]";
    }
}
