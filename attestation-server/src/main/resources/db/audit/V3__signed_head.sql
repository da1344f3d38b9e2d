-- tpmphone audit log, schema 3: the signed head (docs/audit.md, "Signed head").
-- One row, replaced by the writer with every checkpoint, on open and at least every refresh interval. It names the
-- last record and the last checkpoint, so a verifier of a running log can tell a log cut back to an older checkpoint
-- (or an older copy of the whole file) from a quiet one: that head is stale, or names checkpoints that are gone.

CREATE TABLE audit_head (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    seq               INTEGER NOT NULL CHECK (seq >= 0),
    hash              BLOB    NOT NULL CHECK (length(hash) = 32),
    ts_millis         INTEGER NOT NULL,
    checkpoints       INTEGER NOT NULL CHECK (checkpoints >= 0),
    checkpoint_digest BLOB    NOT NULL CHECK (length(checkpoint_digest) = 32),
    refresh_millis    INTEGER NOT NULL CHECK (refresh_millis >= 1),
    key_id            TEXT    NOT NULL,
    signature         BLOB    NOT NULL
);

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head is never deleted: DELETE refused');
END;

CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq OR NEW.checkpoints < OLD.checkpoints OR NEW.ts_millis < OLD.ts_millis
BEGIN
    SELECT RAISE(ABORT, 'audit_head only moves forward: UPDATE to an older seq, checkpoint count or time refused');
END;
