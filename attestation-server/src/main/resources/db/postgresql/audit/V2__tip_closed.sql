-- Whether the chain is closed, on the row every writer locks (issue 17, docs/audit.md "Several instances").
--
-- The instance that stops last signs the closing checkpoint and a closed head, counting the others by their writer
-- leases. An instance stalled (GC pause, SIGSTOP, a preempted VM) for longer than its lease is counted as gone; when
-- it wakes, its writer must not append past the closed head (the next open would refuse the chain as CORRUPT, and
-- `audit verify` would report the head). So every batch reads the close from the tip row it locks, and a batch that
-- finds it set re-opens the chain first, in its own transaction, as an instance's open does after a clean close.
--
-- Why on audit_tip rather than read from audit_head: a batch that waited for the tip's lock while the closer held it
-- reads the tip row as the closer committed it (SELECT ... FOR UPDATE under READ COMMITTED returns the newest
-- version of the rows it locks), but any other table in that statement as it was when the statement began, which is
-- before the close.
ALTER TABLE audit_tip ADD COLUMN closed BOOLEAN NOT NULL DEFAULT false;

UPDATE audit_tip SET closed = COALESCE((SELECT h.closed = 1 FROM audit_head h WHERE h.id = 1), false);

-- The flag mirrors the signed head, whichever server version writes the head (one still running the V1 code during a
-- rolling upgrade closes the chain without knowing the flag). Every writer of the head holds the tip's lock already,
-- so this update waits for nothing; it writes only when the head's closed changes (not on every head refresh).
CREATE FUNCTION audit_head_closed_to_tip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_tip SET closed = (NEW.closed = 1) WHERE id = 1 AND closed IS DISTINCT FROM (NEW.closed = 1);
    RETURN NULL;
END $$;

CREATE TRIGGER audit_head_closed_to_tip AFTER INSERT OR UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_closed_to_tip();
