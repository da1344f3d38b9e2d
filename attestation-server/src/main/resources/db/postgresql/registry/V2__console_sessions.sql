-- The web console's sessions, shared by every server instance on this database (docs/console.md): a session made at
-- one instance works at the others, a sign-out at one ends it at all. Only the SHA-256 of a session id is stored,
-- never the id (nothing here can be presented as a cookie); the CSRF token is derived from the id, not stored.
CREATE TABLE console_session (
    key_sha256       TEXT PRIMARY KEY CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    role             TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
    signed_in_millis BIGINT NOT NULL,
    last_used_millis BIGINT NOT NULL CHECK (last_used_millis >= signed_in_millis)
);
CREATE INDEX console_session_by_role_and_age ON console_session (role, signed_in_millis);
