-- SCIM 2.0 per org (docs/scim.md): the bearer tokens an org's directory uses, the
-- users it provisioned (the SCIM resources; the membership each one governs is a plain
-- row in `memberships`), and the org's SCIM settings.

CREATE TABLE scim_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- SHA-256 of the token: it carries 256 random bits, so a fast hash is enough, and
    -- the token itself is shown once and never stored.
    secret_hash  bytea NOT NULL,
    -- The first characters of the token, so a person can tell tokens apart.
    prefix       text NOT NULL,
    -- The Keycloak subject of the ORG_ADMIN (or platform admin) who created it.
    created_by   text NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT scim_tokens_secret_hash_key UNIQUE (secret_hash),
    CONSTRAINT scim_tokens_name_not_blank CHECK (length(btrim(name)) BETWEEN 1 AND 100)
);
CREATE INDEX scim_tokens_org_id_idx ON scim_tokens (org_id);

CREATE TABLE scim_users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_name   text NOT NULL,
    external_id text,
    active      boolean NOT NULL DEFAULT true,
    -- The member address this resource governs (normalised), if it has a usable one.
    email       text,
    -- The roles the directory gave through the role groups; the membership holds them
    -- while the user is active and has an address.
    roles       text[] NOT NULL DEFAULT '{}',
    -- The attributes as the directory sent them (checked against the published schema).
    resource    jsonb NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    -- The token that created it (NULL once that token is deleted with its org).
    created_by_token uuid REFERENCES scim_tokens (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT scim_users_roles_known CHECK (roles <@ ARRAY['ORG_ADMIN', 'ORG_MANAGER', 'ORG_USER']::text[]),
    CONSTRAINT scim_users_email_normalised CHECK (email IS NULL OR email = lower(btrim(email)))
);
-- userName is unique per org, ignoring case (RFC 7643: caseExact false).
CREATE UNIQUE INDEX scim_users_org_user_name_key ON scim_users (org_id, lower(user_name));
-- One resource per member address in an org: two would fight over one membership.
CREATE UNIQUE INDEX scim_users_org_email_key ON scim_users (org_id, email) WHERE email IS NOT NULL;
CREATE INDEX scim_users_org_external_id_idx ON scim_users (org_id, external_id);

CREATE TABLE scim_settings (
    org_id      uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    -- Whether SCIM may take over members an admin added by hand (off: it answers 409
    -- for their addresses and never changes them).
    adopt_hand_added boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['scim_tokens', 'scim_users', 'scim_settings'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION touch_updated_at()',
                       t || '_touch_updated_at', t);
    END LOOP;
END $$;
