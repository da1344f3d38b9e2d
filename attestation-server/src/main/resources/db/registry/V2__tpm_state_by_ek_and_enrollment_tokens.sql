-- TPM state is kept per EK, not per AK: a host that enrolls a new AK must not reset the rollback check. The old
-- per-AK table also referenced hosts(ak_name), which made AK replacement fail on the foreign key.
CREATE TABLE tpm_state (
    ek_name         BLOB    PRIMARY KEY NOT NULL REFERENCES hosts (ek_name),
    reset_count     INTEGER NOT NULL,
    restart_count   INTEGER NOT NULL,
    clock           INTEGER NOT NULL,
    -- the measurement log last accepted in this boot (reset_count, restart_count); a later log must extend it
    accepted_log    BLOB,
    updated_at      TEXT    NOT NULL
);

-- Keep the rollback history of every host across the upgrade.
INSERT INTO tpm_state (ek_name, reset_count, restart_count, clock, accepted_log, updated_at)
    SELECT h.ek_name, c.reset_count, c.restart_count, c.clock, NULL, c.updated_at
    FROM ak_clock c JOIN hosts h ON h.ak_name = c.ak_name;
DROP TABLE ak_clock;

-- Single-use permissions to enroll a new host name, issued by an operator.
CREATE TABLE enrollment_tokens (
    host            TEXT    PRIMARY KEY NOT NULL,
    token_sha256    BLOB    NOT NULL,
    expires_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL
);
