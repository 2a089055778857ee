-- mailroom PostgreSQL schema, version 1. Applied by schema.rs inside the
-- migration transaction (under the advisory lock); never edit a released
-- migration: add 0002_….sql and bump SCHEMA_VERSION instead.

-- The user directory. Names are canonical (lower case, [a-z0-9._-]).
CREATE TABLE users (
    name          text PRIMARY KEY,
    password_hash text NOT NULL,
    created       timestamptz NOT NULL DEFAULT now()
);

-- Plaintext-equivalent secrets (APOP / CRAM-MD5 opt-ins), kept apart from
-- the hashes so that users can be dumped without them.
CREATE TABLE user_secrets (
    name   text PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
    secret text NOT NULL
);

-- aliases(5) as rows: all rows of one name (any case) form one alias, in id
-- order. `target` is one aliases(5) target (`alice`, `\alice`,
-- `carol@example.org`, `"Help Desk"`) or a comma-separated list of them.
CREATE TABLE aliases (
    id     bigserial PRIMARY KEY,
    name   text NOT NULL,
    target text NOT NULL
);

-- Maildrops: one row per (user, message). No foreign key to users:
-- deleting a user keeps their mail, as the embedded engine does.
CREATE TABLE messages (
    id       bigserial PRIMARY KEY,
    username text NOT NULL,
    -- POP3 UIDL: "<id>.<random>", 0x21-0x7E, unique for ever.
    uid      text NOT NULL UNIQUE,
    -- octet_length(data): CRLF line ends, the exact POP3 size.
    size     bigint NOT NULL,
    created  timestamptz NOT NULL DEFAULT now(),
    data     bytea NOT NULL
);
CREATE INDEX messages_by_user ON messages (username, id);
-- Uncompressed out-of-line storage: substring() then reads only the TOAST
-- chunks it needs, so RETR streams a big message in pieces.
ALTER TABLE messages ALTER COLUMN data SET STORAGE EXTERNAL;

-- POP3 maildrop locks as leases, on the database clock (now()).
CREATE TABLE maildrop_locks (
    username   text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The outbound queue. `envelope` is mailroom_queue::envelope text (its own
-- version line first); the other columns are copies for indexing and
-- claiming, rewritten with it on every update.
CREATE TABLE queue_entries (
    id            text PRIMARY KEY,
    created       bigint NOT NULL,
    held          boolean NOT NULL,
    -- earliest next attempt of a pending recipient; NULL when none pending
    next_attempt  bigint,
    -- the claim: unix seconds on the claimant's clock, and who
    claimed_until bigint,
    claimed_by    text,
    envelope      text NOT NULL
);
CREATE INDEX queue_entries_due ON queue_entries (next_attempt)
    WHERE next_attempt IS NOT NULL AND NOT held;

CREATE TABLE queue_messages (
    id   text PRIMARY KEY REFERENCES queue_entries (id) ON DELETE CASCADE,
    data bytea NOT NULL
);
