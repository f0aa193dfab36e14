-- The hub's schema on PostgreSQL, phase 1 (SPEC §8.1): the same logical schema as
-- migrations/sqlite/0001_initial.sql. Append-only: later changes go in new files.
-- Times are Unix milliseconds; role sets are the bit masks of SPEC §5.1. Every integer is
-- BIGINT so the shared queries decode the same Rust types on both backends. Constraints
-- that the hub reports as conflicts carry explicit names: src/db/postgres.rs maps them to
-- ConflictKind, so renaming one here means changing it there.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT   NOT NULL CONSTRAINT users_email_key UNIQUE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE user_identities (
    user_id    BIGINT NOT NULL REFERENCES users (id),
    issuer     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    csrf_secret  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    dev_login    BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE api_tokens (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash   TEXT    NOT NULL CONSTRAINT api_tokens_token_hash_key UNIQUE,
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    label        TEXT    NOT NULL,
    dev_login    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT  NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE nodes (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id        TEXT   NOT NULL,
    owner_email    TEXT   NOT NULL,
    label          TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    last_report_at BIGINT,
    last_report    TEXT,
    deleted_at     BIGINT,
    CONSTRAINT nodes_identity_key UNIQUE (node_id, owner_email)
);

CREATE INDEX nodes_by_owner ON nodes (owner_email);

CREATE TABLE channels (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT   NOT NULL CONSTRAINT channels_name_key UNIQUE,
    owner_email    TEXT   NOT NULL,
    bucket_backend TEXT   NOT NULL,
    bucket_config  TEXT   NOT NULL DEFAULT '{}',
    read_mode      TEXT   NOT NULL,
    pubsub_backend TEXT   NOT NULL,
    pubsub_config  TEXT   NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);

CREATE INDEX channels_by_owner ON channels (owner_email);

CREATE TABLE memberships (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_row_id     BIGINT NOT NULL REFERENCES nodes (id),
    channel_id      BIGINT NOT NULL REFERENCES channels (id),
    requested_roles BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CONSTRAINT memberships_node_channel_key UNIQUE (node_row_id, channel_id)
);

CREATE INDEX memberships_by_channel ON memberships (channel_id);

CREATE TABLE authorizations (
    channel_id    BIGINT NOT NULL REFERENCES channels (id),
    node_id       TEXT   NOT NULL,
    owner_email   TEXT   NOT NULL,
    granted_roles BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    updated_by    TEXT   NOT NULL,
    CONSTRAINT authorizations_pkey PRIMARY KEY (channel_id, node_id, owner_email)
);

-- FIXME: details is TEXT (as on SQLite) rather than JSONB, because the shared queries bind
-- it as a string; switch to JSONB with a cast when the audit page needs to query inside it.
CREATE TABLE audit_log (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT  NOT NULL,
    actor_kind TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    channel_id BIGINT,
    target     TEXT,
    details    TEXT    NOT NULL DEFAULT '{}',
    request_id TEXT,
    dev_login  BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX audit_log_by_channel ON audit_log (channel_id, at);
CREATE INDEX audit_log_by_action ON audit_log (action, at);

CREATE TABLE seen_nonces (
    signer     TEXT   NOT NULL,
    nonce      TEXT   NOT NULL,
    purpose    TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT seen_nonces_pkey PRIMARY KEY (signer, nonce)
);

CREATE INDEX seen_nonces_by_expiry ON seen_nonces (expires_at);
