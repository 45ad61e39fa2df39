-- The node that runs a task ('' while none does). A single node writes its
-- own ID; the column keeps the run state the same in both dialects.
ALTER TABLE run_states ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
