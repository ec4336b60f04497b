-- The whole wizbrand data model. Postgres is the source of truth; Keycloak is a
-- projection of it kept in step by the sync.

CREATE TABLE orgs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL,
    name        text NOT NULL,
    plan        text NOT NULL DEFAULT 'free',
    features    text[] NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orgs_slug_key UNIQUE (slug),
    -- A slug is a DNS label: it becomes a host name `<slug>.<app>.<domain>`.
    CONSTRAINT orgs_slug_format CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT orgs_slug_not_reserved CHECK (slug NOT IN
        ('www', 'auth', 'api', 'admin', 'login', 'logout', 'static', 'assets', 'keycloak',
         'sso', 'id', 'mail', 'root', 'system', 'wizbrand', 'orgs', 'metrics', 'health')),
    CONSTRAINT orgs_name_not_blank CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    CONSTRAINT orgs_plan_format CHECK (plan ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    CONSTRAINT orgs_status_known CHECK (status IN ('active', 'suspended'))
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Normalised by the application (trimmed, lower-cased); the check keeps it so.
    email           text NOT NULL,
    -- Keycloak's user id (`sub`), known once the user exists there.
    keycloak_id     text,
    display_name    text,
    preferred_org_id uuid REFERENCES orgs (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_keycloak_id_key UNIQUE (keycloak_id),
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)) AND email LIKE '_%@_%')
);

CREATE TABLE memberships (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    roles       text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- One row per user and org.
    CONSTRAINT memberships_pkey PRIMARY KEY (org_id, user_id),
    CONSTRAINT memberships_roles_known CHECK (
        cardinality(roles) >= 1
        AND roles <@ ARRAY['ORG_ADMIN', 'ORG_MANAGER', 'ORG_USER']::text[])
);
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

CREATE TABLE apps (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key              text NOT NULL,
    name             text NOT NULL,
    -- e.g. `{org}.files.wizbrand.localhost`; `{org}` stands for the org's slug.
    host_pattern     text NOT NULL,
    required_feature text NOT NULL,
    min_role         text NOT NULL DEFAULT 'ORG_USER',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT apps_key_key UNIQUE (key),
    CONSTRAINT apps_host_pattern_key UNIQUE (host_pattern),
    CONSTRAINT apps_key_format CHECK (key ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT apps_host_pattern_format CHECK (host_pattern ~ '^(\{org\}\.)?[a-z0-9.-]+$'),
    CONSTRAINT apps_min_role_known CHECK (min_role IN ('ORG_ADMIN', 'ORG_MANAGER', 'ORG_USER'))
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    org_id      uuid REFERENCES orgs (id) ON DELETE SET NULL,
    before      jsonb,
    after       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
CREATE INDEX audit_log_org_id_idx ON audit_log (org_id, at DESC);

CREATE TABLE sync_runs (
    id          bigserial PRIMARY KEY,
    trigger     text NOT NULL,
    scope       text,
    dry_run     boolean NOT NULL DEFAULT false,
    status      text NOT NULL DEFAULT 'running',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    created     integer NOT NULL DEFAULT 0,
    updated     integer NOT NULL DEFAULT 0,
    deleted     integer NOT NULL DEFAULT 0,
    unchanged   integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    errors      jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_runs_trigger_known CHECK (trigger IN ('cron', 'change', 'api', 'cli', 'startup')),
    CONSTRAINT sync_runs_status_known CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'skipped'))
);
CREATE INDEX sync_runs_started_at_idx ON sync_runs (started_at DESC);

-- Sessions live in signed, encrypted cookies; a logout (front- or back-channel) is a
-- row here, so every replica refuses the session at once.
CREATE TABLE session_revocations (
    id          bigserial PRIMARY KEY,
    sid         text,
    sub         text,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    -- After this the session cookie has expired anyway and the row can go.
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT session_revocations_target CHECK (sid IS NOT NULL OR sub IS NOT NULL)
);
CREATE INDEX session_revocations_expires_at_idx ON session_revocations (expires_at);

-- updated_at follows every change.
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- Every change that the gate or the sync cares about is announced on one channel,
-- so each replica reloads its in-memory state and the sync picks the org up.
CREATE FUNCTION notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_data jsonb;
    org text;
BEGIN
    IF TG_OP = 'DELETE' THEN row_data := to_jsonb(OLD); ELSE row_data := to_jsonb(NEW); END IF;
    -- Through jsonb: plpgsql would reject a field one of the tables lacks.
    org := CASE TG_TABLE_NAME
        WHEN 'orgs' THEN row_data->>'id'
        WHEN 'memberships' THEN row_data->>'org_id'
        ELSE NULL END;
    PERFORM pg_notify('wizbrand_changes',
        json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'org_id', org)::text);
    RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['orgs', 'users', 'memberships', 'apps', 'audit_log', 'sync_runs', 'session_revocations'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION touch_updated_at()',
                       t || '_touch_updated_at', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['orgs', 'users', 'memberships', 'apps', 'session_revocations'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION notify_change()',
                       t || '_notify_change', t);
    END LOOP;
END $$;

-- The sidecar apps wizbrand guards. Hosts follow the dev stack's domain; operators
-- change them through the API or the admin UI.
INSERT INTO apps (key, name, host_pattern, required_feature, min_role) VALUES
    ('seo',    'SEO panel',  '{org}.seo.wizbrand.localhost',    'seo',    'ORG_USER'),
    ('music',  'Navidrome',  '{org}.music.wizbrand.localhost',  'music',  'ORG_USER'),
    ('files',  'FileBrowser','{org}.files.wizbrand.localhost',  'files',  'ORG_MANAGER'),
    ('photos', 'Piwigo',     '{org}.photos.wizbrand.localhost', 'photos', 'ORG_USER');
