-- Issue 14: the gate hands an app the caller's Authorization header only when the app
-- is configured for it; by default the Bearer token the gate consumed stays with us.
ALTER TABLE apps ADD COLUMN pass_authorization boolean NOT NULL DEFAULT false;
