-- What a full run verified, so the next one may check Keycloak's admin event log
-- instead of reading every group: the digest of Postgres's desired state, how the run
-- knew Keycloak matched it ('read': it read everything; 'events': the event log showed
-- that nobody else changed anything), and from which moment that holds.
ALTER TABLE sync_runs
    ADD COLUMN desired_digest text,
    ADD COLUMN checked_by     text,
    ADD COLUMN checked_from   timestamptz,
    ADD CONSTRAINT sync_runs_checked_by_known CHECK (checked_by IN ('read', 'events'));
