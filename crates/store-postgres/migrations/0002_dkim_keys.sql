-- mailroom PostgreSQL schema, version 2: DKIM private keys, shared by every
-- node that signs (DESIGN.md principle 4). Applied by schema.rs inside the
-- migration transaction; never edit a released migration.

-- One row per (domain, selector); the newest key of a domain signs.
-- `private_key` is the PEM `mailroom dkim generate` made: whoever can read
-- this table can sign mail as the domain, so grant it like the users table.
CREATE TABLE dkim_keys (
    id          bigserial PRIMARY KEY,
    domain      text NOT NULL,
    selector    text NOT NULL,
    algorithm   text NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    private_key text NOT NULL,
    created     timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (domain, selector)
);
