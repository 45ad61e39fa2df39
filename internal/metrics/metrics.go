// Package metrics holds the Prometheus metrics of a liverelay node.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/liverelay/liverelay/internal/task"
)

// Metrics are the node's metrics, registered on their own registry.
type Metrics struct {
	Registry    *prometheus.Registry
	APIRequests *prometheus.CounterVec
	APILatency  *prometheus.HistogramVec
	BytesOut    prometheus.Counter
	FramesOut   prometheus.Counter
	Reconnects  prometheus.Counter
	Failovers   prometheus.Counter
}

// New registers every metric. stateCounts is read at scrape time for the
// tasks-by-run-state gauge.
func New(stateCounts func() map[string]int) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liverelay_api_requests_total",
			Help: "API requests by call and HTTP status.",
		}, []string{"call", "status"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "liverelay_api_request_duration_seconds",
			Help:    "API request latency by call.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1},
		}, []string{"call"}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liverelay_relay_bytes_out_total",
			Help: "Bytes written to destinations by all tasks.",
		}),
		FramesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liverelay_relay_frames_out_total",
			Help: "Audio and video frames written to destinations by all tasks.",
		}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liverelay_relay_reconnects_total",
			Help: "Reconnects of sources and destinations.",
		}),
		Failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liverelay_relay_failovers_total",
			Help: "Switches from a failed source to a backup.",
		}),
	}
	states := prometheus.NewDesc("liverelay_tasks", "Tasks of the served regions by run state.", []string{"run_state"}, nil)
	m.Registry.MustRegister(
		m.APIRequests, m.APILatency, m.BytesOut, m.FramesOut, m.Reconnects, m.Failovers,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{desc: states, counts: stateCounts},
	)
	return m
}

// ObserveRunState adds what a task did between two of its reports to the
// node's counters.
func (m *Metrics) ObserveRunState(prev, next task.RunState) {
	if next.BytesOut > prev.BytesOut && next.StartedAt.Equal(prev.StartedAt) {
		m.BytesOut.Add(float64(next.BytesOut - prev.BytesOut))
	}
	if next.FramesOut > prev.FramesOut && next.StartedAt.Equal(prev.StartedAt) {
		m.FramesOut.Add(float64(next.FramesOut - prev.FramesOut))
	}
	if next.Reconnects > prev.Reconnects && next.StartedAt.Equal(prev.StartedAt) {
		m.Reconnects.Add(float64(next.Reconnects - prev.Reconnects))
	}
	if next.Failovers > prev.Failovers && next.StartedAt.Equal(prev.StartedAt) {
		m.Failovers.Add(float64(next.Failovers - prev.Failovers))
	}
}

type stateCollector struct {
	desc   *prometheus.Desc
	counts func() map[string]int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.counts()
	for _, st := range []string{
		task.StateWaiting, task.StateStarting, task.StateRunning, task.StateRecovering,
		task.StatePaused, task.StateFinished, task.StateFailed,
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}
