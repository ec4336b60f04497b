-- Email domains an org claims (docs/lifecycle.md, "Joining by domain"). A domain belongs
-- to one org at most; it counts only once a platform admin has marked it verified. Per
-- domain the org chooses what a person with a verified address there may do: nothing,
-- be offered to join ("suggest"), or join as ORG_USER at sign-in ("auto_join").
CREATE TABLE org_domains (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- Lower-case ASCII DNS labels (an IDN as punycode), normalised by the application.
    domain      text NOT NULL,
    status      text NOT NULL DEFAULT 'claimed',
    mode        text NOT NULL DEFAULT 'none',
    -- Keycloak subjects: who claimed it, who verified it.
    claimed_by  text NOT NULL,
    verified_by text,
    verified_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT org_domains_domain_key UNIQUE (domain),
    CONSTRAINT org_domains_domain_format CHECK (
        length(domain) <= 253
        AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT org_domains_status_known CHECK (status IN ('claimed', 'verified')),
    CONSTRAINT org_domains_mode_known CHECK (mode IN ('none', 'suggest', 'auto_join')),
    CONSTRAINT org_domains_verified_when CHECK ((status = 'verified') = (verified_at IS NOT NULL))
);
CREATE INDEX org_domains_org_id_idx ON org_domains (org_id);

CREATE TRIGGER org_domains_touch_updated_at BEFORE UPDATE ON org_domains
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
