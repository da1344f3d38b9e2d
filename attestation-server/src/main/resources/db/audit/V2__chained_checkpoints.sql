-- tpmphone audit log, schema 2: checkpoint encoding v2 (docs/audit.md).
-- A checkpoint is no longer one per seq: the closing checkpoint may sit at the same record as an interval checkpoint,
-- and an empty log closes with a checkpoint at seq 0. So checkpoints get their own ordinal n (1, 2, 3, ... in the
-- order they were written, which is the order their prev_digest chain runs), and the v2 fields. v1 checkpoints of an
-- older log are kept as they are (version 1, v2 fields NULL); the writer chains its first v2 checkpoint to the last.

CREATE TABLE audit_checkpoint_v2 (
    n                   INTEGER PRIMARY KEY CHECK (n >= 1),
    seq                 INTEGER NOT NULL CHECK (seq >= 0),
    hash                BLOB    NOT NULL CHECK (length(hash) = 32),
    ts_millis           INTEGER NOT NULL,
    key_id              TEXT    NOT NULL,
    signature           BLOB    NOT NULL,
    version             INTEGER NOT NULL CHECK (version IN (1, 2)),
    every               INTEGER CHECK (version = 1 OR every >= 1),
    max_unsigned_millis INTEGER CHECK (version = 1 OR max_unsigned_millis >= 1),
    closed              INTEGER CHECK (version = 1 OR closed IN (0, 1)),
    prev_digest         BLOB    CHECK (version = 1 OR length(prev_digest) = 32)
);

INSERT INTO audit_checkpoint_v2 (n, seq, hash, ts_millis, key_id, signature, version)
    SELECT (SELECT count(*) FROM audit_checkpoint AS earlier WHERE earlier.seq <= c.seq), c.seq, c.hash, c.ts_millis,
           c.key_id, c.signature, 1
    FROM audit_checkpoint AS c;

DROP TABLE audit_checkpoint;

ALTER TABLE audit_checkpoint_v2 RENAME TO audit_checkpoint;

CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: DELETE refused');
END;

CREATE TRIGGER audit_checkpoint_append_in_order BEFORE INSERT ON audit_checkpoint
WHEN NEW.n IS NOT (SELECT COALESCE(MAX(n), 0) + 1 FROM audit_checkpoint)
  OR NEW.seq < (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoint)
  OR NEW.version IS NOT 2
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: INSERT must be n = last + 1, seq >= last seq, version 2');
END;
