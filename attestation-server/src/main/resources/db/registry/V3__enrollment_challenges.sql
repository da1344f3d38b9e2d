-- Pending enrollment challenges live in the database rather than in the server's memory (the same code serves the
-- PostgreSQL backend, where any instance may receive the activation). Only the SHA-256 of the credential secret is
-- kept; a challenge is deleted by the first activation that presents its id, and expires after 60 s.
CREATE TABLE enrollment_challenges (
    id              TEXT    PRIMARY KEY NOT NULL,
    host            TEXT    NOT NULL,
    ek_public       BLOB    NOT NULL,
    ek_certificate  BLOB    NOT NULL,
    ak_public       BLOB    NOT NULL,
    secret_sha256   BLOB    NOT NULL,
    expires_millis  INTEGER NOT NULL,
    new_host        INTEGER NOT NULL CHECK (new_host IN (0, 1))
);
