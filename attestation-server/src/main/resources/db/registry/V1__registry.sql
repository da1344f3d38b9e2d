-- Enrolled hosts: one EK and one AK per host name. Names are TPM names (nameAlg || H(TPMT_PUBLIC)).
CREATE TABLE hosts (
    host            TEXT    PRIMARY KEY NOT NULL,
    ek_name         BLOB    NOT NULL UNIQUE,
    ek_public       BLOB    NOT NULL,
    ek_certificate  BLOB    NOT NULL,
    ak_name         BLOB    NOT NULL UNIQUE,
    ak_public       BLOB    NOT NULL,
    enrolled_at     TEXT    NOT NULL
);

-- The last TPM clock state seen per AK: (resetCount, restartCount, clock) never goes back.
CREATE TABLE ak_clock (
    ak_name         BLOB    PRIMARY KEY NOT NULL REFERENCES hosts (ak_name),
    reset_count     INTEGER NOT NULL,
    restart_count   INTEGER NOT NULL,
    clock           INTEGER NOT NULL,
    updated_at      TEXT    NOT NULL
);

-- Every policy version ever loaded; the highest is in force.
CREATE TABLE policies (
    version         INTEGER PRIMARY KEY NOT NULL,
    document        TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL
);
