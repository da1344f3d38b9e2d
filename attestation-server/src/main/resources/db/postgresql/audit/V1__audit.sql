-- tpmphone audit log on PostgreSQL: one hash chain for every server instance on the database (docs/audit.md,
-- "Several instances"). Records, checkpoints and the signed head have SQLite's schema 3 columns and encodings
-- (checkpoints are v3 only); the chain's order comes from audit_tip, never from a sequence: every batch locks the tip
-- row (SELECT ... FOR UPDATE), appends seq = tip + 1, + 2, ... and moves the tip in the same transaction, so seqs are
-- gapless in commit order whichever instance commits. Triggers refuse UPDATE, DELETE and TRUNCATE of records and
-- checkpoints and any INSERT that does not continue the chain; they stop accidents, the hashes and signatures make
-- tampering evident.

CREATE TABLE audit_record (
    seq       BIGINT  PRIMARY KEY CHECK (seq >= 1),
    ts_millis BIGINT  NOT NULL,
    type      TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash BYTEA   NOT NULL CHECK (length(prev_hash) = 32),
    hash      BYTEA   NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_checkpoint (
    n                   BIGINT  PRIMARY KEY CHECK (n >= 1),
    seq                 BIGINT  NOT NULL CHECK (seq >= 0),
    hash                BYTEA   NOT NULL CHECK (length(hash) = 32),
    ts_millis           BIGINT  NOT NULL,
    key_id              TEXT    NOT NULL,
    signature           BYTEA   NOT NULL,
    version             INTEGER NOT NULL CHECK (version = 3),
    every               INTEGER NOT NULL CHECK (every >= 1),
    max_unsigned_millis BIGINT  NOT NULL CHECK (max_unsigned_millis >= 1),
    closed              INTEGER NOT NULL CHECK (closed IN (0, 1)),
    prev_digest         BYTEA   NOT NULL CHECK (length(prev_digest) = 32)
);

CREATE TABLE audit_head (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    seq               BIGINT  NOT NULL CHECK (seq >= 0),
    hash              BYTEA   NOT NULL CHECK (length(hash) = 32),
    ts_millis         BIGINT  NOT NULL,
    checkpoints       BIGINT  NOT NULL CHECK (checkpoints >= 0),
    checkpoint_digest BYTEA   NOT NULL CHECK (length(checkpoint_digest) = 32),
    refresh_millis    BIGINT  NOT NULL CHECK (refresh_millis >= 1),
    closed            INTEGER NOT NULL CHECK (closed IN (0, 1)),
    key_id            TEXT    NOT NULL,
    signature         BYTEA   NOT NULL
);

-- Where the chain ends, and what the next batch needs to continue it: locked by every batch and every checkpoint.
-- every and max_unsigned_millis are the cluster's checkpoint interval and bound, fixed by the first instance.
CREATE TABLE audit_tip (
    id                     INTEGER PRIMARY KEY CHECK (id = 1),
    seq                    BIGINT  NOT NULL CHECK (seq >= 0),
    hash                   BYTEA   NOT NULL CHECK (length(hash) = 32),
    ts_millis              BIGINT  NOT NULL,
    checkpoints            BIGINT  NOT NULL CHECK (checkpoints >= 0),
    last_checkpoint_seq    BIGINT  NOT NULL CHECK (last_checkpoint_seq >= 0),
    last_checkpoint_digest BYTEA   NOT NULL CHECK (length(last_checkpoint_digest) = 32),
    first_unsigned_millis  BIGINT  NOT NULL,
    every                  INTEGER NOT NULL CHECK (every >= 1),
    max_unsigned_millis    BIGINT  NOT NULL CHECK (max_unsigned_millis >= 1)
);

-- The instances appending, each with a lease it renews; the last one to close signs the closing checkpoint.
CREATE TABLE audit_writer (
    instance          TEXT    PRIMARY KEY,
    lease_until       TIMESTAMPTZ NOT NULL
);

-- The one instance that signs time-based checkpoints and refreshes the signed head, while its lease lasts.
CREATE TABLE audit_signer (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    instance          TEXT    NOT NULL,
    lease_until       TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;

CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE FUNCTION audit_record_continues_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_seq  BIGINT;
    last_hash BYTEA;
BEGIN
    SELECT seq, hash INTO last_seq, last_hash FROM audit_record ORDER BY seq DESC LIMIT 1;
    IF NEW.seq IS DISTINCT FROM COALESCE(last_seq, 0) + 1
       OR NEW.prev_hash IS DISTINCT FROM COALESCE(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) THEN
        RAISE EXCEPTION 'audit_record is append-only: INSERT must continue the chain (seq = last + 1, prev_hash = last hash)';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_record_append_continues_chain BEFORE INSERT ON audit_record
    FOR EACH ROW EXECUTE FUNCTION audit_record_continues_chain();

CREATE FUNCTION audit_checkpoint_in_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.n IS DISTINCT FROM (SELECT COALESCE(MAX(n), 0) + 1 FROM audit_checkpoint)
       OR NEW.seq < (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoint) THEN
        RAISE EXCEPTION 'audit_checkpoint is append-only: INSERT must be n = last + 1, seq >= last seq';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_checkpoint_append_in_order BEFORE INSERT ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_in_order();

CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND (SELECT COUNT(*) FROM audit_head) > 0 THEN
        RAISE EXCEPTION 'audit_head has one row, which is only updated: INSERT refused';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.seq < OLD.seq OR NEW.checkpoints < OLD.checkpoints) THEN
        RAISE EXCEPTION 'audit_head only moves forward: UPDATE to an older seq or checkpoint count refused';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_head_forward_only BEFORE INSERT OR UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
