-- Sign-in (SPEC §8.1, §9): pending OpenID Connect logins, CLI approvals and device codes.
-- Every secret a flow carries is stored hashed where the hub only needs to recognise it
-- (`state` of CLI and device flows is the SHA-256 of the code the CLI redeems); the OIDC
-- PKCE verifier and nonce are kept as they are, since the hub must send them later.
-- Rows are single-use: redeeming one deletes it.

CREATE TABLE auth_flows (
    state          TEXT   PRIMARY KEY,
    kind           TEXT   NOT NULL,
    provider       TEXT,
    pkce_verifier  TEXT,
    code_challenge TEXT,
    oidc_nonce     TEXT,
    user_code      TEXT   CONSTRAINT auth_flows_user_code_key UNIQUE,
    return_to      TEXT,
    user_id        BIGINT REFERENCES users (id),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);

CREATE INDEX auth_flows_by_expiry ON auth_flows (expires_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX user_identities_by_user ON user_identities (user_id);
