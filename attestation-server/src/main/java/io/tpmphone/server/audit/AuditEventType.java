package io.tpmphone.server.audit;

/**
 * What kind of event an audit record documents. Stored and hashed as its {@link #name()}; names are never
 * renamed or reused, new kinds are only added.
 */
public enum AuditEventType {
    /** A host enrolled (or tried to enroll) an EK and an AK. */
    ENROLLMENT,
    /** Evidence was appraised; the detail carries the evidence hash and the result. */
    APPRAISAL,
    /** The appraisal policy was replaced or changed. */
    POLICY_CHANGE,
    /** A request was refused (authentication, authorization, a failed check). */
    REFUSAL,
    /** A key or secret was released to a host. */
    KEY_RELEASE,
    /** A call was allowed or refused on the strength of an attestation result. */
    CALL_DECISION,
    /** Any other administrative operation. */
    ADMIN
}
