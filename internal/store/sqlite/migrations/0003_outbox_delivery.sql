-- A project's own callback signing key, sealed with the server's keyring;
-- empty: callbacks of the project are signed with the server-wide key.
ALTER TABLE projects ADD COLUMN callback_key BLOB NOT NULL DEFAULT x'';

-- Delivery reads the events still to be tried: neither delivered nor given
-- up. events_due finds the ones whose time has come; events_task_pending
-- finds a task's lowest pending seq, so that its next event waits for it.
DROP INDEX events_pending;
CREATE INDEX events_due ON events (next_attempt_at) WHERE delivered_at IS NULL AND gave_up = 0;
CREATE INDEX events_task_pending ON events (task_id, seq) WHERE delivered_at IS NULL AND gave_up = 0;
