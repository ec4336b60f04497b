-- Invitations: an org asks a person, by email, to join with some roles. The link in
-- the mail carries a random token; only its SHA-256 is stored, so a copy of the
-- database opens no invitation. A pending invitation holds a seat (docs/lifecycle.md).
CREATE TABLE invitations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- Normalised by the application, as users.email.
    email            text NOT NULL,
    roles            text[] NOT NULL,
    -- Who invited: their Keycloak subject and the proven email they had then.
    invited_by       text NOT NULL,
    invited_by_email text,
    -- Hex SHA-256 of the token in the newest mail.
    token_hash       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending',
    expires_at       timestamptz NOT NULL,
    sent_at          timestamptz NOT NULL DEFAULT now(),
    -- Set when accepted (the accepting account's subject) or revoked (who revoked).
    accepted_by      text,
    accepted_at      timestamptz,
    revoked_by       text,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_email_normalised CHECK (email = lower(btrim(email)) AND email LIKE '_%@_%'),
    CONSTRAINT invitations_status_known CHECK (status IN ('pending', 'accepted', 'revoked')),
    CONSTRAINT invitations_roles_known CHECK (
        cardinality(roles) >= 1
        AND roles <@ ARRAY['ORG_ADMIN', 'ORG_MANAGER', 'ORG_USER']::text[]),
    CONSTRAINT invitations_token_hash_format CHECK (token_hash ~ '^[0-9a-f]{64}$')
);
-- One open invitation per person and org (an expired one is renewed by "resend").
CREATE UNIQUE INDEX invitations_one_pending_idx ON invitations (org_id, email) WHERE status = 'pending';
CREATE INDEX invitations_email_idx ON invitations (email) WHERE status = 'pending';

-- Tokens of earlier mails of an invitation (replaced by "resend"): dead, but known, so
-- their link says "replaced by a newer mail" instead of "no such invitation".
CREATE TABLE invitation_retired_tokens (
    token_hash    text PRIMARY KEY,
    invitation_id uuid NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    retired_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invitation_retired_tokens_format CHECK (token_hash ~ '^[0-9a-f]{64}$')
);

CREATE TRIGGER invitations_touch_updated_at BEFORE UPDATE ON invitations
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
