package io.tpmphone.server.internal;

import java.util.Map;

/**
 * Where the server records what it decided. Recording is part of the decision: if it fails, the request fails
 * (503), so nothing is decided without a record.
 */
@FunctionalInterface
public interface AuditTrail {
    void record(String type, String subject, String outcome, Map<String, Object> detail) throws ApiException;
}
