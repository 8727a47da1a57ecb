package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// MinLeaseTTL is the shortest cluster.leaseTTL: renewed every third of it,
// a shorter lease would lapse under a live node on a GC pause or a slow
// Redis answer.
const MinLeaseTTL = time.Second

// checkCluster checks what the schema cannot: the lease TTL's floor.
func (c *Config) checkCluster(add addFunc) {
	if c.Cluster == nil {
		return
	}
	if d := c.Cluster.LeaseTTL.D(); d < MinLeaseTTL {
		add("cluster.leaseTTL", "cluster.leaseTTL: %v is too short; a lease is renewed every third of it, so it must be at least %v", d, MinLeaseTTL)
	}
}

// Cluster mirrors #Cluster in schema/config.cue: several nodes sharing
// connection counts, rates, suspensions and throttles through Redis.
type Cluster struct {
	Redis ClusterRedis `json:"redis"`
	// Node names this node in the cluster; "" is the host name.
	Node string `json:"node"`
	// LeaseTTL is how long a dead node's connection slots outlive it.
	LeaseTTL Duration `json:"leaseTTL"`
}

// ClusterRedis is where the shared state lives.
type ClusterRedis struct {
	Addrs      []string `json:"addrs"`
	MasterName string   `json:"masterName"`
	Username   string   `json:"username"`
	Password   string   `json:"password"`
	TLS        RedisTLS `json:"tls"`
	DB         int      `json:"db"`
	KeyPrefix  string   `json:"keyPrefix"`
}

// RedisTLS is the cluster.redis.tls setting: false (plain TCP), true
// (TLS, verified against the system roots), or {ca, serverName}.
type RedisTLS struct {
	Enabled    bool
	CA         string // a PEM file of roots; "": the system's
	ServerName string // "": the address's host
}

// UnmarshalJSON accepts a bool or the object form.
func (t *RedisTLS) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*t = RedisTLS{Enabled: on}
		return nil
	}
	var o struct {
		CA         string `json:"ca"`
		ServerName string `json:"serverName"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("cluster.redis.tls: want a bool or {ca, serverName}: %w", err)
	}
	*t = RedisTLS{Enabled: true, CA: o.CA, ServerName: o.ServerName}
	return nil
}
