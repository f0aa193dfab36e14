-- Node-API rate limits shared by every hub replica of one database count a node's recent
-- requests by its remembered nonces (expires_at is the hub's receive time plus a fixed
-- memory), so the count needs an index by signer and expiry.
CREATE INDEX seen_nonces_by_signer_expiry ON seen_nonces (signer, expires_at);
