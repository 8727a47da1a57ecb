package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cuemta/cuemta/cluster"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/suppress"
)

// startCluster connects to the cluster's Redis when the config has a
// cluster section, and returns the scheduler's view of it; nil (and no
// Redis) otherwise. Redis being down is no error: the node starts on its
// fallback share and joins when Redis answers. The section is read at
// the start only: a reload does not move a running node to another
// cluster.
func (s *Server) startCluster(cfg *config.Config) (delivery.Shared, error) {
	cc := cfg.Cluster
	if cc == nil {
		return nil, nil
	}
	var tlsConf *tls.Config
	if t := cc.Redis.TLS; t.Enabled {
		tlsConf = &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
		if t.CA != "" {
			pem, err := os.ReadFile(t.CA)
			if err != nil {
				return nil, fmt.Errorf("cluster.redis.tls.ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cluster.redis.tls.ca: %s holds no PEM certificate", t.CA)
			}
			tlsConf.RootCAs = pool
		}
	}
	c, err := cluster.New(cluster.Options{
		Addrs: cc.Redis.Addrs, MasterName: cc.Redis.MasterName, Username: cc.Redis.Username, Password: cc.Redis.Password,
		DB: cc.Redis.DB, TLS: tlsConf, KeyPrefix: cc.Redis.KeyPrefix, Node: cc.Node, LeaseTTL: cc.LeaseTTL.D(),
		StateFile: filepath.Join(cfg.Spool.Dir, "cluster.json"), Logger: s.logger,
	})
	if err != nil {
		return nil, err
	}
	s.cluster = c
	s.metrics.ClusterFunc(func() metrics.Cluster {
		st := c.Status()
		return metrics.Cluster{Up: st.Up, Nodes: len(st.Nodes), RoundTrips: st.RoundTrips, Fallbacks: st.Fallbacks}
	})
	s.logger.Info("cluster", "node", c.Node(), "redis", strings.Join(cc.Redis.Addrs, ","), "key_prefix", cc.Redis.KeyPrefix,
		"lease_ttl", cc.LeaseTTL.D())
	return clusterShared{c}, nil
}

// clusterShared is a cluster.Client as delivery.Shared.
type clusterShared struct{ c *cluster.Client }

func (a clusterShared) AcquireConn(ctx context.Context, ls []delivery.SharedLease) (func(), bool) {
	out := make([]cluster.Lease, len(ls))
	for i, l := range ls {
		out[i] = cluster.Lease(l)
	}
	return a.c.AcquireConn(ctx, out)
}

func (a clusterShared) Retain(ls []delivery.SharedLease) bool {
	out := make([]cluster.Lease, len(ls))
	for i, l := range ls {
		out[i] = cluster.Lease(l)
	}
	return a.c.Retain(out)
}

func (a clusterShared) Reserve(ctx context.Context, rs []delivery.SharedRate, n int) time.Duration {
	out := make([]cluster.Rate, len(rs))
	for i, r := range rs {
		out[i] = cluster.Rate(r)
	}
	return a.c.Reserve(ctx, out, n)
}

func (a clusterShared) Changed() { a.c.Changed() }

func (a clusterShared) Count(key string, within time.Duration, limit int) (int, bool) {
	return a.c.Count(key, within, limit)
}

func (s *Server) sharedEntries() []cluster.Entry {
	es := s.delivery.SharedEntries()
	out := make([]cluster.Entry, len(es))
	for i, e := range es {
		out[i] = cluster.Entry{Key: e.Key, At: e.At, Expire: e.Expire, Value: e.Value}
	}
	return out
}

func (s *Server) applyShared(es []cluster.Entry) {
	out := make([]delivery.SharedEntry, len(es))
	for i, e := range es {
		out[i] = delivery.SharedEntry{Key: e.Key, At: e.At, Expire: e.Expire, Value: e.Value}
	}
	s.delivery.ApplyShared(out)
}

// clusterDegraded says why this node applies its fallback share of the
// shared limits, or "" when it does not.
func (s *Server) clusterDegraded() (string, string) {
	if s.cluster == nil {
		return "", ""
	}
	st := s.cluster.Status()
	if st.Up {
		return "", ""
	}
	return "cluster redis unreachable", fmt.Sprintf(
		"each shared limit is applied as this node's share of it (%d nodes last seen) until Redis answers: %s",
		max(1, len(st.Nodes)), st.LastError)
}

// shareSuppressions passes this node's suppression-list changes (bounces,
// complaints, the admin API, imports) to the other nodes and applies
// theirs to this node's list, durably.
func (s *Server) shareSuppressions() {
	c := s.cluster
	s.suppressions.OnChange(func(ch suppress.Change) {
		b, err := json.Marshal(ch)
		if err == nil {
			c.PublishSuppression(b)
		}
	})
	c.SetSuppressions(func(p []byte) error {
		var ch suppress.Change
		if err := json.Unmarshal(p, &ch); err != nil {
			s.logger.Warn("cluster: a suppression change that does not decode, skipped", "err", err)
			return nil
		}
		for i := range ch.Added {
			if err := suppress.Check(&ch.Added[i]); err != nil {
				s.logger.Warn("cluster: an invalid suppression entry from another node, skipped", "err", err)
				return nil
			}
		}
		return s.suppressions.Apply(ch)
	})
}
