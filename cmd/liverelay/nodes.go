package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/liverelay/liverelay/internal/cluster"
	"github.com/liverelay/liverelay/internal/store"
)

// nodeInfo is one node as `liverelay nodes` prints it.
type nodeInfo struct {
	NodeID   string   `json:"node_id"`
	State    string   `json:"state"` // live, draining (shutting down or shut down), gone (no heartbeat for a lease)
	Regions  []string `json:"regions"`
	MaxTasks int      `json:"max_tasks"` // 0: no limit
	Load     int      `json:"load"`      // tasks it holds the lease of
	Listen   string   `json:"listen"`
	// Times are the database's.
	StartedAt      string `json:"started_at"`
	LastHeartbeat  string `json:"last_heartbeat"`
	HeartbeatAgeMS int64  `json:"heartbeat_age_ms"`
}

// nodes runs `liverelay nodes`: the nodes of the cluster on --store, with
// their regions, load and last heartbeat, as JSON. It only reads.
func nodes(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("liverelay nodes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeURL := fs.String("store", "", "the cluster's PostgreSQL URL, postgres://user:pass@host:port/db")
	ttl := fs.Duration("lease-ttl", cluster.DefaultTTL, "the nodes' --lease-ttl: a node whose heartbeat is older is gone")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("nodes: %w", err)
	}
	if *storeURL == "" {
		return errors.New("nodes: --store postgres://... is required: a node alone on its SQLite store is the only node")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := openStore(ctx, *storeURL, "", true)
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	defer st.Close()
	cs, ok := st.(store.Cluster)
	if !ok {
		return errors.New("nodes: --store postgres://... is required: a node alone on its SQLite store is the only node")
	}
	list, err := cs.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	out := struct {
		Nodes []nodeInfo `json:"nodes"`
	}{Nodes: []nodeInfo{}}
	for _, n := range list {
		state := "live"
		switch {
		case n.Draining:
			state = "draining"
		case n.HeartbeatAge >= *ttl:
			state = "gone"
		}
		regions := n.Regions
		if regions == nil {
			regions = []string{}
		}
		out.Nodes = append(out.Nodes, nodeInfo{
			NodeID: n.ID, State: state, Regions: regions, MaxTasks: n.MaxTasks, Load: n.Load, Listen: n.Listen,
			StartedAt: n.StartedAt.UTC().Format(time.RFC3339Nano), LastHeartbeat: n.HeartbeatAt.UTC().Format(time.RFC3339Nano),
			HeartbeatAgeMS: n.HeartbeatAge.Milliseconds(),
		})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
