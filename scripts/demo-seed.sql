-- Demo data for the dev stack (never for production): the orgs and memberships of
-- docs/design.md. Idempotent: re-running puts the demo back the way it was.
BEGIN;

INSERT INTO orgs (slug, name, plan, features) VALUES
    ('acme', 'Acme Corporation', 'pro',  ARRAY['seo', 'music', 'files', 'photos']),
    ('beta', 'Beta Labs',        'free', ARRAY['seo'])
ON CONFLICT (slug) DO UPDATE
    SET name = EXCLUDED.name, plan = EXCLUDED.plan, features = EXCLUDED.features, status = 'active';

INSERT INTO users (email, display_name) VALUES
    ('alice@example.com', 'Alice Demo'),
    ('bob@example.com',   'Bob Demo'),
    ('carol@example.com', 'Carol Demo'),
    ('dana@example.com',  'Dana Demo')
ON CONFLICT (email) DO NOTHING;

INSERT INTO memberships (org_id, user_id, roles)
SELECT o.id, u.id, m.roles
FROM (VALUES
        ('acme', 'alice@example.com', ARRAY['ORG_ADMIN']),
        ('acme', 'bob@example.com',   ARRAY['ORG_USER']),
        ('acme', 'carol@example.com', ARRAY['ORG_USER']),
        ('beta', 'carol@example.com', ARRAY['ORG_MANAGER'])
     ) AS m(slug, email, roles)
JOIN orgs o ON o.slug = m.slug
JOIN users u ON u.email = m.email
ON CONFLICT (org_id, user_id) DO UPDATE SET roles = EXCLUDED.roles;

COMMIT;
