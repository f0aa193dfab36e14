-- Passcodes, their links to memberships, and per-channel counters (SPEC §5.3, §8.1).
-- A passcode is stored only as HMAC-SHA256 under the hub's passcode pepper (src/passcode.rs);
-- hint is what views show. A membership's passcode roles are the union of the roles of its
-- linked passcodes that are neither revoked nor expired; use_count moves only when a link
-- is made. Links go with their membership (leaving a channel, deleting a node).

CREATE TABLE passcodes (
    id         INTEGER PRIMARY KEY,
    channel_id BIGINT  NOT NULL REFERENCES channels (id),
    hash       TEXT    NOT NULL UNIQUE,
    hint       TEXT    NOT NULL,
    label      TEXT,
    roles      INTEGER NOT NULL,
    expires_at BIGINT,
    max_uses   BIGINT,
    use_count  BIGINT  NOT NULL DEFAULT 0,
    created_by TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX passcodes_by_channel ON passcodes (channel_id);

CREATE TABLE membership_passcodes (
    membership_id BIGINT NOT NULL REFERENCES memberships (id) ON DELETE CASCADE,
    passcode_id   BIGINT NOT NULL REFERENCES passcodes (id),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (membership_id, passcode_id)
);

CREATE INDEX membership_passcodes_by_passcode ON membership_passcodes (passcode_id);

CREATE TABLE stats_counters (
    scope_kind TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    counter    TEXT   NOT NULL,
    value      BIGINT NOT NULL,
    PRIMARY KEY (scope_kind, scope, counter)
);
