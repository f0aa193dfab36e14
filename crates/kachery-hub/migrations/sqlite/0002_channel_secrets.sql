-- Channel secrets (SPEC §8.1, §8.2): backend credentials encrypted with XChaCha20-Poly1305
-- under the master key's secrets sub-key (src/vault.rs). Never plaintext: ciphertext and
-- xnonce are base64, key_id names the master key the row was written under, fingerprint
-- and hint are what views show.

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
    PRIMARY KEY (channel_id, kind)
);

CREATE INDEX channel_secrets_by_key ON channel_secrets (key_id);
