-- Passcodes, their links to memberships, and per-channel counters on PostgreSQL: the same
-- logical tables as migrations/sqlite/0004_passcodes_and_stats.sql (SPEC §5.3, §8.1).
-- A passcode is stored only as HMAC-SHA256 under the hub's passcode pepper; links go with
-- their membership.

CREATE TABLE passcodes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels (id),
    hash       TEXT   NOT NULL CONSTRAINT passcodes_hash_key UNIQUE,
    hint       TEXT   NOT NULL,
    label      TEXT,
    roles      BIGINT NOT NULL,
    expires_at BIGINT,
    max_uses   BIGINT,
    use_count  BIGINT NOT NULL DEFAULT 0,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX passcodes_by_channel ON passcodes (channel_id);

CREATE TABLE membership_passcodes (
    membership_id BIGINT NOT NULL REFERENCES memberships (id) ON DELETE CASCADE,
    passcode_id   BIGINT NOT NULL REFERENCES passcodes (id),
    created_at    BIGINT NOT NULL,
    CONSTRAINT membership_passcodes_pkey PRIMARY KEY (membership_id, passcode_id)
);

CREATE INDEX membership_passcodes_by_passcode ON membership_passcodes (passcode_id);

CREATE TABLE stats_counters (
    scope_kind TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    counter    TEXT   NOT NULL,
    value      BIGINT NOT NULL,
    CONSTRAINT stats_counters_pkey PRIMARY KEY (scope_kind, scope, counter)
);
