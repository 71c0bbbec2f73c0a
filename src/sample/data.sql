-- Deterministic data for the sample application. :comments is the size of the largest table;
-- the others scale from it. No random(): the same size always gives the same rows.
INSERT INTO issue_statuses (id, name, is_closed) VALUES
    (1, 'open', false), (2, 'in progress', false), (3, 'in review', false),
    (4, 'done', true), (5, 'won''t do', true);

INSERT INTO users (email, display_name, password_hash, deleted_at, created_at, updated_at)
SELECT format('user%s@example.com', g),
       format('User %s', g),
       md5('pw' || g),
       CASE WHEN g % 97 = 0 THEN timestamptz '2024-03-01' END,
       timestamptz '2023-01-01' + g * interval '17 minutes',
       timestamptz '2023-06-01' + g * interval '13 minutes'
  FROM generate_series(1::bigint, :users) g;
-- A deleted account's address reused by a live one: allowed by the partial unique index.
INSERT INTO users (email, display_name, password_hash, created_at, updated_at)
SELECT upper(email), display_name || ' (again)', md5('again'), timestamptz '2024-03-02', timestamptz '2024-03-02'
  FROM users WHERE deleted_at IS NOT NULL;

INSERT INTO projects (key, name, owner_id, created_at, updated_at)
SELECT 'P' || g, format('Project %s', g), 1 + (g * 7) % :users,
       timestamptz '2023-02-01' + g * interval '1 hour', timestamptz '2023-07-01' + g * interval '1 hour'
  FROM generate_series(1::bigint, :projects) g;

INSERT INTO epics (project_id, title, created_at)
SELECT 1 + (g - 1) % :projects, format('Epic %s', g), timestamptz '2023-03-01' + g * interval '1 hour'
  FROM generate_series(1::bigint, :projects * 5) g;

INSERT INTO sprints (project_id, name, starts_on, ends_on)
SELECT p, format('Sprint %s', s), date '2024-01-01' + (s * 14)::int, date '2024-01-01' + (s * 14 + 13)::int
  FROM generate_series(1::bigint, :projects) p, generate_series(1::bigint, 10) s;

INSERT INTO issues (project_id, number, epic_id, sprint_id, parent_id, status_id, reporter_id,
                    assignee_id, title, body, priority, created_at, updated_at)
SELECT 1 + (g - 1) % :projects,
       1 + (g - 1) / :projects,
       CASE WHEN g % 3 = 0 THEN 1 + (g - 1) % :projects + :projects * ((g / 3) % 5) END,
       CASE WHEN g % 2 = 0 THEN ((g - 1) % :projects) * 10 + 1 + (g / 2) % 10 END,
       CASE WHEN g % 10 = 0 AND g > :projects THEN g - :projects END,
       1 + g % 5,
       1 + (g * 13) % :users,
       CASE WHEN g % 4 <> 0 THEN 1 + (g * 31) % :users END,
       format('Issue %s: %s', g, md5(g::text)),
       repeat(md5((g * 2)::text) || ' ', (1 + g % 4)::int),
       1 + g % 5,
       timestamptz '2024-01-01' + g * interval '41 seconds',
       timestamptz '2024-02-01' + g * interval '29 seconds'
  FROM generate_series(1::bigint, :issues) g;

INSERT INTO issue_comments (issue_id, author_id, body, created_at, updated_at)
SELECT 1 + (g * 7919) % :issues,
       1 + (g * 17) % :users,
       format('Comment %s. %s', g, md5(g::text)),
       timestamptz '2024-01-02' + g * interval '11 seconds',
       timestamptz '2024-01-03' + g * interval '11 seconds'
  FROM generate_series(1::bigint, :comments) g;

INSERT INTO attachments (id, issue_id, comment_id, uploaded_by, filename, content_type, size_bytes, sha256, created_at)
SELECT md5('attachment' || g)::uuid,
       1 + (g * 104729) % :issues,
       CASE WHEN g % 2 = 0 THEN g END,
       1 + (g * 23) % :users,
       format('file-%s.%s', g, (ARRAY['png', 'pdf', 'txt', 'log'])[1 + g % 4]),
       (ARRAY['image/png', 'application/pdf', 'text/plain', 'text/plain'])[1 + g % 4],
       1024 + (g * 37) % 1000000,
       encode(sha256(g::text::bytea), 'hex'),
       timestamptz '2024-01-05' + g * interval '53 seconds'
  FROM generate_series(1::bigint, :attachments) g;

INSERT INTO audit_events (occurred_at, actor_id, action, detail)
SELECT timestamptz '2024-01-01' + ((g * 7776000) / :audit) * interval '1 second',
       1 + g % :users,
       (ARRAY['login', 'create', 'update', 'delete'])[1 + g % 4],
       jsonb_build_object('n', g)
  FROM generate_series(1::bigint, :audit) g;

