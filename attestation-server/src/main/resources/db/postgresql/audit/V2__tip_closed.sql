-- Whether the chain is closed, on the row every writer locks (issue 17, docs/audit.md "Several instances").
--
-- The instance that stops last signs the closing checkpoint and a closed head, counting the others by their writer
-- leases. An instance stalled (GC pause, SIGSTOP, a preempted VM) for longer than its lease is counted as gone; when
-- it wakes, its writer must not append past the closed head (the next open would refuse the chain as CORRUPT, and
-- `audit verify` would report the head). So the close is recorded here, and a batch that finds it set re-opens the
-- chain first, in its own transaction, as an instance's open does after a clean close.
--
-- Why on audit_tip rather than read from audit_head: a batch that waited for the tip's lock while the closer held it
-- reads the tip row as the closer committed it (SELECT ... FOR UPDATE under READ COMMITTED returns the newest
-- version of the rows it locks), but any other table in that statement as it was when the statement began, which is
-- before the close. The flag is kept equal to audit_head.closed: set with a closed head, cleared with an open one.
ALTER TABLE audit_tip ADD COLUMN closed BOOLEAN NOT NULL DEFAULT false;

UPDATE audit_tip SET closed = COALESCE((SELECT h.closed = 1 FROM audit_head h WHERE h.id = 1), false);
