-- Frames a relay dropped because its destination was slower than its
-- source (whole GOPs), for the list output.
ALTER TABLE run_states ADD COLUMN frames_dropped bigint NOT NULL DEFAULT 0;

-- How many tasks a project holds, kept by CreateTask and DeleteTask in the
-- same transaction: the quota check reads it instead of counting the rows.
ALTER TABLE projects ADD COLUMN task_count integer NOT NULL DEFAULT 0;
UPDATE projects SET task_count = (SELECT COUNT(*) FROM tasks WHERE tasks.project_id = projects.id);
