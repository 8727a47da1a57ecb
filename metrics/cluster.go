package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Cluster is what ClusterFunc reports: the node's view of the cluster's
// shared accounting.
type Cluster struct {
	Up         bool // Redis answers: shared accounting in force
	Nodes      int  // nodes last seen, this one included
	RoundTrips uint64
	Fallbacks  uint64 // decisions taken on the local share while Redis was down
}

// clusterGauges are the cuemta_cluster_* metrics, asked of a function at
// scrape time; a node alone (no function) exports none.
type clusterGauges struct {
	up, nodes, trips, fallbacks *prometheus.Desc
	fn                          atomic.Pointer[func() Cluster]
}

func newClusterGauges() *clusterGauges {
	return &clusterGauges{
		up:        prometheus.NewDesc(ns+"_cluster_redis_up", "1 when the cluster's Redis answers (shared limits in force), 0 when this node applies its fallback share.", nil, nil),
		nodes:     prometheus.NewDesc(ns+"_cluster_nodes", "Nodes of the cluster last seen, this one included.", nil, nil),
		trips:     prometheus.NewDesc(ns+"_cluster_redis_round_trips_total", "Calls to the cluster's Redis.", nil, nil),
		fallbacks: prometheus.NewDesc(ns+"_cluster_fallback_decisions_total", "Connection and rate decisions taken on this node's share while Redis was unreachable.", nil, nil),
	}
}

func (g *clusterGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.up
	ch <- g.nodes
	ch <- g.trips
	ch <- g.fallbacks
}

func (g *clusterGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	c := (*f)()
	up := 0.0
	if c.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(g.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(g.nodes, prometheus.GaugeValue, float64(c.Nodes))
	ch <- prometheus.MustNewConstMetric(g.trips, prometheus.CounterValue, float64(c.RoundTrips))
	ch <- prometheus.MustNewConstMetric(g.fallbacks, prometheus.CounterValue, float64(c.Fallbacks))
}

// ClusterFunc sets the function the cluster metrics are read from.
func (m *Metrics) ClusterFunc(f func() Cluster) {
	if m == nil {
		return
	}
	m.cluster.fn.Store(&f)
}
