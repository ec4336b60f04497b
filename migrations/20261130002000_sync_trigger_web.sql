-- A run asked for on the admin sync page is recorded as such ('web'), apart from one
-- asked for through the API ('api').
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_trigger_known;
ALTER TABLE sync_runs
    ADD CONSTRAINT sync_runs_trigger_known
    CHECK (trigger IN ('cron', 'change', 'api', 'web', 'cli', 'startup'));
