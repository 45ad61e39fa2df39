-- Several nodes on one database.
--
-- run_states.node_id names the node that runs the task ('' while none does).
-- The lease columns say which node may run it: lease_owner until
-- lease_expires_at (the database's clock), both NULL when released or never
-- claimed. lease_token counts the claims: a write under a lease carries the
-- token it was claimed with, and matches nothing after the next claim.
ALTER TABLE run_states
	ADD COLUMN node_id          text NOT NULL DEFAULT '',
	ADD COLUMN lease_owner      text COLLATE "C",
	ADD COLUMN lease_token      bigint NOT NULL DEFAULT 0,
	ADD COLUMN lease_expires_at timestamptz;

-- A node's load (its unexpired leases), for the claims and the nodes list.
CREATE INDEX run_states_by_lease_owner ON run_states (lease_owner) WHERE lease_owner IS NOT NULL;

-- One row per node, its heartbeat renewed with its leases.
CREATE TABLE nodes (
	id           text COLLATE "C" PRIMARY KEY,
	regions      text[] NOT NULL,
	max_tasks    integer NOT NULL, -- 0: no limit
	listen       text NOT NULL,
	draining     boolean NOT NULL,
	started_at   timestamptz NOT NULL,
	heartbeat_at timestamptz NOT NULL
);

-- Delivery of an event is claimed the same way, so one node at a time
-- sends it: claim_owner until claim_expires_at, claim_token bumped by each
-- claim and carried by the write of the outcome.
ALTER TABLE events
	ADD COLUMN claim_owner      text,
	ADD COLUMN claim_token      bigint NOT NULL DEFAULT 0,
	ADD COLUMN claim_expires_at timestamptz;
