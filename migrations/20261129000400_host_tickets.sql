-- One-time tickets that hand a signed-in session from the auth host to one app host
-- (docs/cookies.md). A row lives about 30 seconds and is deleted by its first use on any
-- replica (`DELETE … RETURNING`): single-use across replicas. Only the SHA-256 of the
-- ticket and of the browser binding are kept.
CREATE TABLE host_tickets (
    ticket_hash  text PRIMARY KEY CHECK (length(ticket_hash) BETWEEN 1 AND 128),
    -- The app host it was issued for (lower-case, no port).
    host         text NOT NULL,
    -- The hash of the nonce cookie the gate set on that host for this browser.
    bind_hash    text NOT NULL,
    -- The session it continues (wizbrand's session fields, without the CSRF token).
    session      jsonb NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX host_tickets_expires_at_idx ON host_tickets (expires_at);
