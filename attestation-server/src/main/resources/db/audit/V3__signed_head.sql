-- tpmphone audit log, schema 3: the signed head and checkpoint encoding v3 (docs/audit.md, "Signed head").
-- The head is one row, replaced by the writer with every checkpoint, on open and at least every refresh interval. It
-- names the last record and the last checkpoint, so a verifier of a running log can tell a log cut back to an older
-- checkpoint (or an older copy of the whole file) from a quiet one: that head is stale, or names checkpoints that are
-- gone. Checkpoints written from now on are v3 (v2's fields under a new signed tag): each commits the log to having a
-- head, so deleting the head (or its table) along with a cut shows wherever a v3 checkpoint is left.

CREATE TABLE audit_head (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    seq               INTEGER NOT NULL CHECK (seq >= 0),
    hash              BLOB    NOT NULL CHECK (length(hash) = 32),
    ts_millis         INTEGER NOT NULL,
    checkpoints       INTEGER NOT NULL CHECK (checkpoints >= 0),
    checkpoint_digest BLOB    NOT NULL CHECK (length(checkpoint_digest) = 32),
    refresh_millis    INTEGER NOT NULL CHECK (refresh_millis >= 1),
    closed            INTEGER NOT NULL CHECK (closed IN (0, 1)),
    key_id            TEXT    NOT NULL,
    signature         BLOB    NOT NULL
);

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head is never deleted: DELETE refused');
END;

-- INSERT OR REPLACE would otherwise replace the row without firing the UPDATE or DELETE triggers.
CREATE TRIGGER audit_head_insert_once BEFORE INSERT ON audit_head
WHEN (SELECT COUNT(*) FROM audit_head) > 0
BEGIN
    SELECT RAISE(ABORT, 'audit_head has one row, which is only updated: INSERT refused');
END;

-- Its time may go back with the server's clock (an older time only makes the head look staler); seq and count not.
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq OR NEW.checkpoints < OLD.checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_head only moves forward: UPDATE to an older seq or checkpoint count refused');
END;

-- Checkpoints may now be version 3; new ones must be. SQLite cannot change a CHECK constraint, so the table is rebuilt.
CREATE TABLE audit_checkpoint_v3 (
    n                   INTEGER PRIMARY KEY CHECK (n >= 1),
    seq                 INTEGER NOT NULL CHECK (seq >= 0),
    hash                BLOB    NOT NULL CHECK (length(hash) = 32),
    ts_millis           INTEGER NOT NULL,
    key_id              TEXT    NOT NULL,
    signature           BLOB    NOT NULL,
    version             INTEGER NOT NULL CHECK (version IN (1, 2, 3)),
    every               INTEGER CHECK (version = 1 OR every >= 1),
    max_unsigned_millis INTEGER CHECK (version = 1 OR max_unsigned_millis >= 1),
    closed              INTEGER CHECK (version = 1 OR closed IN (0, 1)),
    prev_digest         BLOB    CHECK (version = 1 OR length(prev_digest) = 32)
);

INSERT INTO audit_checkpoint_v3 SELECT n, seq, hash, ts_millis, key_id, signature, version, every, max_unsigned_millis,
    closed, prev_digest FROM audit_checkpoint;

DROP TABLE audit_checkpoint;

ALTER TABLE audit_checkpoint_v3 RENAME TO audit_checkpoint;

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
  OR NEW.version IS NOT 3
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: INSERT must be n = last + 1, seq >= last seq, version 3');
END;
