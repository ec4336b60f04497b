-- The audit actor is the Keycloak subject (which the person cannot change); the email
-- they had at the time is kept beside it for people to read. Rows written before this
-- hold the email (or, without one, the subject) in `actor` and no `actor_email`.
ALTER TABLE audit_log ADD COLUMN actor_email text;
