-- Per-org app visibility: an ORG_ADMIN may close an app (by its key) for their org
-- even when the plan includes it. The gate refuses hidden apps.
ALTER TABLE orgs ADD COLUMN hidden_apps text[] NOT NULL DEFAULT '{}';
