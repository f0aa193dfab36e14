-- Channel secrets on PostgreSQL: the same logical table as
-- migrations/sqlite/0002_channel_secrets.sql (SPEC §8.1, §8.2). Never plaintext:
-- ciphertext and xnonce are base64 TEXT (as on SQLite, so the shared queries bind strings),
-- key_id names the master key the row was written under, fingerprint and hint are what
-- views show.

CREATE TABLE channel_secrets (
    channel_id  BIGINT NOT NULL REFERENCES channels (id),
    kind        TEXT   NOT NULL,
    ciphertext  TEXT   NOT NULL,
    xnonce      TEXT   NOT NULL,
    key_id      TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    hint        TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT   NOT NULL,
    CONSTRAINT channel_secrets_pkey PRIMARY KEY (channel_id, kind)
);

CREATE INDEX channel_secrets_by_key ON channel_secrets (key_id);
