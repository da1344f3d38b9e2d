package io.tpmphone.server.internal;

import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.PolicyException;
import java.sql.SQLException;
import java.util.Map;
import java.util.Optional;

/**
 * The attestation policy in force: the highest version stored in the registry. With one server instance (SQLite) this
 * instance is the only writer, and the policy it stored last is kept parsed. With a shared database another instance
 * may store a newer version at any time, so {@link #current()} asks the database for the newest version on every
 * call (one indexed lookup) and re-reads the document only when that changed: a parsed document is cached by version,
 * which never changes once stored, so memory holds no truth. Thread-safe.
 */
public final class PolicyStore {
    private final Registry registry;
    private volatile AttestationPolicy parsed;

    public PolicyStore(Registry registry) {
        this.registry = registry;
    }

    /**
     * Loads the newest stored policy; if {@code configured} is newer (or nothing is stored) it is stored and
     * returned as the policy in force. Returns whether {@code configured} was stored.
     */
    public boolean load(AttestationPolicy configured, String by) throws SQLException, PolicyException {
        Optional<Map.Entry<Integer, String>> stored = registry.latestPolicy();
        parsed = stored.isPresent() ? AttestationPolicy.parse(stored.get().getValue()) : null;
        if (configured == null || (parsed != null && parsed.version() >= configured.version())) {
            return false;
        }
        if (!registry.storePolicy(configured.version(), configured.toJson(), by)) {
            return load(null, by); // another instance stored a version at least as new meanwhile
        }
        parsed = configured;
        return true;
    }

    /** The policy in force, or null if none was ever stored. */
    public AttestationPolicy current() {
        AttestationPolicy p = parsed;
        if (!registry.shared()) {
            return p;
        }
        try {
            int newest = registry.latestPolicyVersion();
            if (newest == 0 || (p != null && p.version() == newest)) {
                return newest == 0 ? null : p;
            }
            Optional<Map.Entry<Integer, String>> stored = registry.latestPolicy();
            if (stored.isEmpty()) {
                return null;
            }
            AttestationPolicy loaded = AttestationPolicy.parse(stored.get().getValue());
            parsed = loaded;
            return loaded;
        } catch (SQLException e) {
            throw new StorageUnavailableException("cannot read the policy in force", e);
        } catch (PolicyException e) {
            throw new IllegalStateException("the registry holds a policy that does not parse: " + e.getMessage(), e);
        }
    }

    /**
     * Makes {@code next} the policy in force if it is newer than every stored version; false (nothing changed) if one
     * at least as new is stored, here or at another instance.
     */
    public synchronized boolean replace(AttestationPolicy next, String by) throws SQLException {
        if (!registry.storePolicy(next.version(), next.toJson(), by)) {
            return false;
        }
        parsed = next;
        return true;
    }
}
