-- The PostgreSQL schema of liverelay: the same tables as the SQLite store's,
-- in this dialect, with a history of its own.
--
-- Conventions: times are timestamptz kept to the millisecond, NULL for the
-- zero time; string lists are text[], '{}' when empty. Identifiers compare
-- byte-wise (COLLATE "C"), so that ordering by ID is the same as in SQLite
-- whatever locale the database was created with.

CREATE TABLE projects (
	id           text COLLATE "C" PRIMARY KEY,
	account_id   text NOT NULL,
	region       text NOT NULL,
	create_time  timestamptz,
	-- Sealed with the server's keyring; empty: the server-wide key signs.
	callback_key bytea NOT NULL DEFAULT ''
);

CREATE TABLE credentials (
	access_key  text COLLATE "C" PRIMARY KEY,
	secret_key  bytea NOT NULL,
	user_id     text NOT NULL,
	account_id  text NOT NULL,
	project_ids text[] NOT NULL,
	actions     text[] NOT NULL,
	root        boolean NOT NULL,
	revoked     boolean NOT NULL,
	create_time timestamptz
);

CREATE TABLE tasks (
	id                    text COLLATE "C" PRIMARY KEY,
	project_id            text COLLATE "C" NOT NULL REFERENCES projects (id),
	region                text COLLATE "C" NOT NULL,
	source_type           text NOT NULL,
	source_urls           text[] NOT NULL,
	domain                text NOT NULL,
	app_name              text NOT NULL,
	stream_name           text NOT NULL,
	push_args             text NOT NULL,
	destination_url       text NOT NULL,
	destination           text NOT NULL,
	destination_key       text COLLATE "C" NOT NULL,
	start_time            timestamptz,
	end_time              timestamptz,
	vod_loop_time         bigint NOT NULL,
	vod_refresh_type      text NOT NULL,
	vod_start_video_index bigint NOT NULL,
	vod_start_video_time  bigint NOT NULL,
	backup_source_type    text NOT NULL,
	backup_source_urls    text[] NOT NULL,
	callback_events       text[] NOT NULL,
	callback_url          text NOT NULL,
	status                text NOT NULL,
	create_time           timestamptz,
	update_time           timestamptz,
	generation            bigint NOT NULL
);

-- List (newest first within a project), its total, and the quota count; the
-- second for list with a region, which clients send.
CREATE INDEX tasks_by_project ON tasks (project_id, create_time, id);
CREATE INDEX tasks_by_project_region ON tasks (project_id, region, create_time, id);
-- The one-enabled-task-per-destination rule.
CREATE INDEX tasks_by_destination ON tasks (destination_key);
-- The scheduler's TasksInRegions.
CREATE INDEX tasks_by_region ON tasks (region);

CREATE TABLE run_states (
	task_id            text COLLATE "C" PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
	state              text NOT NULL,
	on_backup          boolean NOT NULL,
	current_source_url text NOT NULL,
	current_index      bigint NOT NULL,
	current_offset_ms  bigint NOT NULL,
	loops_done         bigint NOT NULL,
	started_at         timestamptz,
	last_heartbeat     timestamptz,
	bitrate_bps        bigint NOT NULL,
	fps                double precision NOT NULL,
	frames_out         bigint NOT NULL,
	bytes_out          bigint NOT NULL,
	reconnects         bigint NOT NULL,
	failovers          bigint NOT NULL,
	-- JSON {"code","message","at_ms"}, NULL when none. Text, not jsonb: the
	-- message comes from remote peers, and JSON escapes what a text or jsonb
	-- column would refuse (NUL, invalid UTF-8).
	last_error         text,
	exit_reason        text NOT NULL
);

CREATE TABLE checkpoints (
	task_id    text COLLATE "C" PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
	loop       bigint NOT NULL,
	file_index bigint NOT NULL,
	offset_ms  bigint NOT NULL
);

-- Outbox of callback events. No foreign key to tasks: a deleted task's last
-- events (TaskExit, final) must still be delivered. seq counts per task
-- (1, 2, 3, ...); the body is kept byte for byte.
CREATE TABLE events (
	id              text COLLATE "C" PRIMARY KEY,
	task_id         text COLLATE "C" NOT NULL,
	project_id      text COLLATE "C" NOT NULL,
	seq             bigint NOT NULL,
	type            text NOT NULL,
	created_at      timestamptz NOT NULL,
	body            bytea NOT NULL,
	final           boolean NOT NULL,
	callback_url    text NOT NULL,
	delivered_at    timestamptz,
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	last_error      text NOT NULL DEFAULT '',
	gave_up         boolean NOT NULL DEFAULT false,
	UNIQUE (task_id, seq)
);

-- Delivery reads the events still to be tried: neither delivered nor given
-- up. events_due finds the ones whose time has come; events_task_pending
-- finds a task's lowest pending seq, so that its next event waits for it.
CREATE INDEX events_due ON events (next_attempt_at) WHERE delivered_at IS NULL AND NOT gave_up;
CREATE INDEX events_task_pending ON events (task_id, seq) WHERE delivered_at IS NULL AND NOT gave_up;
