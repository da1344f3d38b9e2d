-- tpmphone audit log, schema 1. Hash and signature encodings: docs/audit.md.
-- Tables are append-only: the triggers below refuse UPDATE and DELETE, and refuse an INSERT that does not continue
-- the chain (seq = last + 1, prev_hash = last hash). The hash chain and signed checkpoints are what make tampering
-- evident; the triggers stop accidents and casual edits.

CREATE TABLE audit_record (
    seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
    ts_millis INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_checkpoint (
    seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    ts_millis INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL
);

CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_record
BEGIN
    SELECT RAISE(ABORT, 'audit_record is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_record
BEGIN
    SELECT RAISE(ABORT, 'audit_record is append-only: DELETE refused');
END;

CREATE TRIGGER audit_record_append_continues_chain BEFORE INSERT ON audit_record
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_record)
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit_record WHERE seq = NEW.seq - 1), zeroblob(32))
BEGIN
    SELECT RAISE(ABORT, 'audit_record is append-only: INSERT must continue the chain (seq = last + 1, prev_hash = last hash)');
END;

CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: DELETE refused');
END;
