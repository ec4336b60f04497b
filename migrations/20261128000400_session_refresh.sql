-- Token refresh of browser sessions (see src/web/refresh.rs). The refresh token is
-- rotated by Keycloak at every use; the row lock taken while refreshing makes one
-- refresh at a time per session across every replica.
ALTER TABLE session_tokens
    ADD COLUMN access_token       text,
    ADD COLUMN refresh_token      text,
    ADD COLUMN access_expires_at  timestamptz;
CREATE INDEX session_tokens_access_expires_at_idx ON session_tokens (access_expires_at)
    WHERE refresh_token IS NOT NULL;
