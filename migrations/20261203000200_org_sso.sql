-- Per-org single sign-on (docs/lifecycle.md, "Single sign-on per org"): an org's own
-- OpenID Connect provider, which wizbrand creates in Keycloak as the identity provider
-- `alias` (`org-<slug>`). The client secret is kept sealed (AES-256-GCM under a key
-- derived from WIZBRAND_SESSION_KEY, the org's id as associated data): a copy of the
-- database alone does not hold it.
CREATE TABLE org_sso (
    org_id               uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    alias                text NOT NULL,
    issuer               text NOT NULL,
    client_id            text NOT NULL,
    client_secret_sealed bytea NOT NULL,
    -- The role a first sign-in through the provider gives.
    join_role            text NOT NULL DEFAULT 'ORG_USER',
    configured_by        text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT org_sso_alias_key UNIQUE (alias),
    CONSTRAINT org_sso_alias_format CHECK (alias ~ '^org-[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT org_sso_join_role_known CHECK (join_role IN ('ORG_ADMIN', 'ORG_MANAGER', 'ORG_USER'))
);

CREATE TRIGGER org_sso_touch_updated_at BEFORE UPDATE ON org_sso
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
