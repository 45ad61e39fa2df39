-- Conventions: times are unix milliseconds UTC (INTEGER, NULL for the zero
-- time); string lists are JSON arrays (TEXT); booleans are 0 or 1.

CREATE TABLE projects (
	id          TEXT PRIMARY KEY,
	account_id  TEXT NOT NULL,
	region      TEXT NOT NULL,
	create_time INTEGER
) STRICT;

CREATE TABLE credentials (
	access_key  TEXT PRIMARY KEY,
	secret_key  BLOB NOT NULL,
	user_id     TEXT NOT NULL,
	account_id  TEXT NOT NULL,
	project_ids TEXT NOT NULL,
	actions     TEXT NOT NULL,
	root        INTEGER NOT NULL,
	revoked     INTEGER NOT NULL,
	create_time INTEGER
) STRICT;

CREATE TABLE tasks (
	id                    TEXT PRIMARY KEY,
	project_id            TEXT NOT NULL REFERENCES projects (id),
	region                TEXT NOT NULL,
	source_type           TEXT NOT NULL,
	source_urls           TEXT NOT NULL,
	domain                TEXT NOT NULL,
	app_name              TEXT NOT NULL,
	stream_name           TEXT NOT NULL,
	push_args             TEXT NOT NULL,
	destination_url       TEXT NOT NULL,
	destination           TEXT NOT NULL,
	destination_key       TEXT NOT NULL,
	start_time            INTEGER,
	end_time              INTEGER,
	vod_loop_time         INTEGER NOT NULL,
	vod_refresh_type      TEXT NOT NULL,
	vod_start_video_index INTEGER NOT NULL,
	vod_start_video_time  INTEGER NOT NULL,
	backup_source_type    TEXT NOT NULL,
	backup_source_urls    TEXT NOT NULL,
	callback_events       TEXT NOT NULL,
	callback_url          TEXT NOT NULL,
	status                TEXT NOT NULL,
	create_time           INTEGER,
	update_time           INTEGER,
	generation            INTEGER NOT NULL
) STRICT;

-- List (newest first within a project; scanned backwards), its total, and
-- the quota count; the second for list with a region, which clients send.
CREATE INDEX tasks_by_project ON tasks (project_id, create_time, id);
CREATE INDEX tasks_by_project_region ON tasks (project_id, region, create_time, id);
-- The one-enabled-task-per-destination rule.
CREATE INDEX tasks_by_destination ON tasks (destination_key);
-- The scheduler's TasksInRegions.
CREATE INDEX tasks_by_region ON tasks (region);

CREATE TABLE run_states (
	task_id            TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
	state              TEXT NOT NULL,
	on_backup          INTEGER NOT NULL,
	current_source_url TEXT NOT NULL,
	current_index      INTEGER NOT NULL,
	current_offset_ms  INTEGER NOT NULL,
	loops_done         INTEGER NOT NULL,
	started_at         INTEGER,
	last_heartbeat     INTEGER,
	bitrate_bps        INTEGER NOT NULL,
	fps                REAL NOT NULL,
	frames_out         INTEGER NOT NULL,
	bytes_out          INTEGER NOT NULL,
	reconnects         INTEGER NOT NULL,
	failovers          INTEGER NOT NULL,
	last_error         TEXT, -- JSON {"code","message","at_ms"}, NULL when none
	exit_reason        TEXT NOT NULL
) STRICT;

CREATE TABLE checkpoints (
	task_id    TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
	loop       INTEGER NOT NULL,
	file_index INTEGER NOT NULL,
	offset_ms  INTEGER NOT NULL
) STRICT;

-- Outbox of callback events. No foreign key to tasks: a deleted task's last
-- events (TaskExit, final) must still be delivered.
CREATE TABLE events (
	id              TEXT PRIMARY KEY,
	task_id         TEXT NOT NULL,
	project_id      TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	type            TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	body            TEXT NOT NULL,
	delivered_at    INTEGER,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,
	last_error      TEXT NOT NULL DEFAULT '',
	UNIQUE (task_id, seq)
) STRICT;

CREATE INDEX events_pending ON events (next_attempt_at) WHERE delivered_at IS NULL;
