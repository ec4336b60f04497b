-- Session tokens sealed at rest (issue 16). Each row's tokens (ID, access, refresh) are
-- one AES-256-GCM value under a key derived from the session's random handle, which
-- only the session's cookie holds; the row is keyed by another value derived from the
-- handle (src/web/token_vault.rs). A copy of the database opens no token.
--
-- Rows from before held the tokens and the handle in the clear and cannot be sealed
-- here (the key derivation is not SQL's). Their sessions end: one revocation per user
-- ends every session issued before now (people sign in again; Keycloak's own session
-- usually makes that a redirect without a form). By user, not by Keycloak `sid`: a
-- revoked `sid` would also refuse the new sign-in of the same Keycloak session.
INSERT INTO session_revocations (sub, expires_at)
    SELECT sub, max(expires_at) FROM session_tokens WHERE expires_at > now() GROUP BY sub;
DROP TABLE session_tokens;

CREATE TABLE session_tokens (
    -- Derived from the cookie's handle (HKDF-SHA256); not the handle.
    id                 text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    sub                text NOT NULL,
    sid                text,
    -- Format byte, 96-bit nonce, AES-256-GCM ciphertext and tag.
    sealed             bytea NOT NULL CHECK (length(sealed) BETWEEN 29 AND 65536),
    -- Whether the sealed tokens hold a refresh token (the refresher's filter).
    refreshable        boolean NOT NULL,
    access_expires_at  timestamptz NOT NULL,
    -- Rows past this are dead and deleted (the session has expired anyway).
    expires_at         timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_tokens_expires_at_idx ON session_tokens (expires_at);
CREATE INDEX session_tokens_access_expires_at_idx ON session_tokens (access_expires_at)
    WHERE refreshable;
CREATE TRIGGER session_tokens_touch_updated_at BEFORE UPDATE ON session_tokens
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
