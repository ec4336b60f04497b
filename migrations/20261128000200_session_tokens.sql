-- Tokens of browser sessions, kept server-side so the session cookie stays small.
-- The cookie carries only `handle`; the ID token is the `id_token_hint` of
-- RP-initiated logout. Rows past `expires_at` are dead and may be deleted.
CREATE TABLE session_tokens (
    handle      text PRIMARY KEY,
    sub         text NOT NULL,
    sid         text,
    id_token    text NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_tokens_expires_at_idx ON session_tokens (expires_at);
CREATE TRIGGER session_tokens_touch_updated_at BEFORE UPDATE ON session_tokens
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
