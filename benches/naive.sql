-- The naive conversion of seed 004 ("Single-Tenant to Multi-Tenant"), as a DBA would type it
-- into psql for the sample application: every statement in autocommit, no lock_timeout.
-- Used by the benchmark as the baseline tenantize is compared with.

-- Step 1-2: tenant table and default tenant.
CREATE TABLE public.tenants (id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO public.tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Default tenant');

-- Step 3: nullable tenant_id with a foreign key, on every business table.
ALTER TABLE public.users ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.users ADD CONSTRAINT fk_users_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.projects ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.projects ADD CONSTRAINT fk_projects_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.epics ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.epics ADD CONSTRAINT fk_epics_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.sprints ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.sprints ADD CONSTRAINT fk_sprints_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.issues ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.issues ADD CONSTRAINT fk_issues_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.issue_comments ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.issue_comments ADD CONSTRAINT fk_issue_comments_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.attachments ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.attachments ADD CONSTRAINT fk_attachments_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;
ALTER TABLE public.audit_events ADD COLUMN tenant_id uuid NULL;
ALTER TABLE public.audit_events ADD CONSTRAINT fk_audit_events_tenant FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE;

-- Step 4: migrate existing data to the default tenant, one UPDATE per table.
UPDATE public.users SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.projects SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.epics SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.sprints SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.issues SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.issue_comments SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.attachments SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;
UPDATE public.audit_events SET tenant_id = '00000000-0000-0000-0000-000000000001' WHERE tenant_id IS NULL;

-- Step 6: NOT NULL.
ALTER TABLE public.users ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.projects ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.epics ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.sprints ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.issues ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.issue_comments ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.attachments ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE public.audit_events ALTER COLUMN tenant_id SET NOT NULL;

-- Step 7: composite indexes (plain CREATE INDEX).
CREATE INDEX idx_users_tenant_id ON public.users (tenant_id);
CREATE INDEX idx_projects_tenant_owner ON public.projects (tenant_id, owner_id);
CREATE INDEX idx_epics_tenant_project ON public.epics (tenant_id, project_id);
CREATE INDEX idx_sprints_tenant_project ON public.sprints (tenant_id, project_id);
CREATE INDEX idx_issues_tenant_project ON public.issues (tenant_id, project_id);
CREATE INDEX idx_issues_tenant_epic ON public.issues (tenant_id, epic_id);
CREATE INDEX idx_issues_tenant_sprint ON public.issues (tenant_id, sprint_id);
CREATE INDEX idx_issues_tenant_parent ON public.issues (tenant_id, parent_id);
CREATE INDEX idx_issues_tenant_reporter ON public.issues (tenant_id, reporter_id);
CREATE INDEX idx_issues_tenant_assignee ON public.issues (tenant_id, assignee_id);
CREATE INDEX idx_issue_comments_tenant_issue ON public.issue_comments (tenant_id, issue_id);
CREATE INDEX idx_issue_comments_tenant_author ON public.issue_comments (tenant_id, author_id);
CREATE INDEX idx_attachments_tenant_issue ON public.attachments (tenant_id, issue_id);
CREATE INDEX idx_attachments_tenant_comment ON public.attachments (tenant_id, comment_id);
CREATE INDEX idx_attachments_tenant_uploader ON public.attachments (tenant_id, uploaded_by);
CREATE INDEX idx_audit_events_tenant_id ON public.audit_events (tenant_id);

-- Step 8: unique constraints scoped to the tenant (plain ADD CONSTRAINT / CREATE UNIQUE INDEX).
DROP INDEX public.users_email_key;
CREATE UNIQUE INDEX users_email_key ON public.users (tenant_id, lower(email)) WHERE deleted_at IS NULL;
ALTER TABLE public.projects DROP CONSTRAINT projects_key_key;
ALTER TABLE public.projects ADD CONSTRAINT projects_key_key UNIQUE (tenant_id, key);
ALTER TABLE public.sprints DROP CONSTRAINT sprints_project_id_name_key;
ALTER TABLE public.sprints ADD CONSTRAINT sprints_project_id_name_key UNIQUE (tenant_id, project_id, name);
ALTER TABLE public.issues DROP CONSTRAINT issues_project_id_number_key;
ALTER TABLE public.issues ADD CONSTRAINT issues_project_id_number_key UNIQUE (tenant_id, project_id, number);
DROP INDEX public.attachments_issue_id_sha256_key;
CREATE UNIQUE INDEX attachments_issue_id_sha256_key ON public.attachments (tenant_id, issue_id, sha256);

-- Enable row-level security.
ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.users USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.projects USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.epics ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.epics USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.sprints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.sprints USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.issues ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.issues USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.issue_comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.issue_comments USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.attachments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.attachments USING (tenant_id = current_setting('app.tenant_id')::uuid);
ALTER TABLE public.audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.audit_events USING (tenant_id = current_setting('app.tenant_id')::uuid);
