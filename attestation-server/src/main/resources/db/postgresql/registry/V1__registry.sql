-- tpmphone registry on PostgreSQL: the schema of SQLite's db/registry V1+V2, plus what several server instances must
-- share instead of keeping it in memory (docs/decisions/0008): the outstanding nonce and accepted request times per
-- AK, pending enrollment challenges, the last appraisal of each host, and the identity of the cluster's keys.
-- Names are TPM names (nameAlg || H(TPMT_PUBLIC)); times are Unix epoch milliseconds unless named *_at (ISO text).

CREATE TABLE hosts (
    host            TEXT    PRIMARY KEY,
    ek_name         BYTEA   NOT NULL UNIQUE,
    ek_public       BYTEA   NOT NULL,
    ek_certificate  BYTEA   NOT NULL,
    ak_name         BYTEA   NOT NULL UNIQUE,
    ak_public       BYTEA   NOT NULL,
    enrolled_at     TEXT    NOT NULL
);

-- Per TPM (EK): the newest (reset_count, restart_count, clock) and the log accepted in that boot. Moved only by
-- compare-and-set on version (UPDATE ... WHERE version = expected), so concurrent appraisals on several instances
-- never move it back.
CREATE TABLE tpm_state (
    ek_name         BYTEA   PRIMARY KEY REFERENCES hosts (ek_name),
    reset_count     BIGINT  NOT NULL,
    restart_count   BIGINT  NOT NULL,
    clock           BIGINT  NOT NULL,
    accepted_log    BYTEA,
    version         BIGINT  NOT NULL CHECK (version >= 1),
    updated_at      TEXT    NOT NULL
);

CREATE TABLE policies (
    version         INTEGER PRIMARY KEY,
    document        TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL
);

CREATE TABLE enrollment_tokens (
    host            TEXT    PRIMARY KEY,
    token_sha256    BYTEA   NOT NULL,
    expires_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL
);

-- A MakeCredential challenge waiting for the agent's answer; taken (deleted) by the first activation at any instance.
-- Only the SHA-256 of the credential secret is kept.
CREATE TABLE enrollment_challenges (
    id              TEXT    PRIMARY KEY,
    host            TEXT    NOT NULL,
    ek_public       BYTEA   NOT NULL,
    ek_certificate  BYTEA   NOT NULL,
    ak_public       BYTEA   NOT NULL,
    secret_sha256   BYTEA   NOT NULL,
    expires_millis  BIGINT  NOT NULL,
    new_host        BOOLEAN NOT NULL
);

-- The one outstanding nonce per AK (SHA-256 of it); a consumption deletes it, so it is redeemed once at any instance.
CREATE TABLE nonce_grants (
    ak_id           TEXT    PRIMARY KEY,
    nonce_sha256    BYTEA   NOT NULL UNIQUE,
    expires_millis  BIGINT  NOT NULL
);
CREATE INDEX nonce_grants_expires ON nonce_grants (expires_millis);

-- The signed nonce-request times accepted per AK (NonceService's floor and the times above it), so a request
-- replayed to another instance is refused too.
CREATE TABLE nonce_requests (
    ak_id           TEXT    PRIMARY KEY,
    floor_millis    BIGINT  NOT NULL,
    ahead_millis    BIGINT[] NOT NULL,
    newest_millis   BIGINT  NOT NULL
);
CREATE INDEX nonce_requests_newest ON nonce_requests (newest_millis);

-- The last appraisal of each host, as operators and the device CA see it.
CREATE TABLE last_appraisals (
    host            TEXT    PRIMARY KEY,
    level           TEXT    NOT NULL,
    failed_check    TEXT,
    at_millis       BIGINT  NOT NULL,
    expires_millis  BIGINT  NOT NULL
);

-- The keys every instance must share (result signing, keystore authority, device CA): the first instance records
-- their ids, and an instance with other keys refuses to start.
CREATE TABLE cluster_keys (
    role            TEXT    PRIMARY KEY,
    key_id          TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL
);
