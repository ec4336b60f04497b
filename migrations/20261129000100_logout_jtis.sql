-- Back-channel logout tokens already used (OpenID Back-Channel Logout 1.0, section 2.6):
-- a replayed token is refused on every replica. A row is kept while its token could
-- still be accepted (`expires_at`: its `iat` plus the accepted age); each insert prunes
-- the rows past that (see src/db/logout_jtis.rs).
CREATE TABLE logout_token_jtis (
    jti         text PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 256),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX logout_token_jtis_expires_at_idx ON logout_token_jtis (expires_at);
