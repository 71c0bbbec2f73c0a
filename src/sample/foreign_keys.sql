-- The sample application's foreign keys, added after the data so they are validated in bulk
-- (one join per key) rather than row by row while loading.
ALTER TABLE projects ADD CONSTRAINT projects_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id);
ALTER TABLE epics ADD CONSTRAINT epics_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE sprints ADD CONSTRAINT sprints_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE issues ADD CONSTRAINT issues_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE issues ADD CONSTRAINT issues_epic_id_fkey FOREIGN KEY (epic_id) REFERENCES epics (id) ON DELETE SET NULL;
ALTER TABLE issues ADD CONSTRAINT issues_sprint_id_fkey FOREIGN KEY (sprint_id) REFERENCES sprints (id) ON DELETE SET NULL;
ALTER TABLE issues ADD CONSTRAINT issues_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES issues (id) ON DELETE CASCADE;
ALTER TABLE issues ADD CONSTRAINT issues_status_id_fkey FOREIGN KEY (status_id) REFERENCES issue_statuses (id);
ALTER TABLE issues ADD CONSTRAINT issues_reporter_id_fkey FOREIGN KEY (reporter_id) REFERENCES users (id);
ALTER TABLE issues ADD CONSTRAINT issues_assignee_id_fkey FOREIGN KEY (assignee_id) REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE issue_comments ADD CONSTRAINT issue_comments_issue_id_fkey FOREIGN KEY (issue_id) REFERENCES issues (id) ON DELETE CASCADE;
ALTER TABLE issue_comments ADD CONSTRAINT issue_comments_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id);
ALTER TABLE attachments ADD CONSTRAINT attachments_issue_id_fkey FOREIGN KEY (issue_id) REFERENCES issues (id) ON DELETE CASCADE;
ALTER TABLE attachments ADD CONSTRAINT attachments_comment_id_fkey FOREIGN KEY (comment_id) REFERENCES issue_comments (id) ON DELETE SET NULL;
ALTER TABLE attachments ADD CONSTRAINT attachments_uploaded_by_fkey FOREIGN KEY (uploaded_by) REFERENCES users (id);
