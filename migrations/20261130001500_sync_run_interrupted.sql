-- A run stopped at a safe point because its process was shutting down (SIGTERM):
-- what it did is counted, what it left is said in `errors`; the next run does it.
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_known;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_known
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'skipped', 'interrupted'));
