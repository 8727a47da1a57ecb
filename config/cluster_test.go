package config

import (
	"strings"
	"testing"
	"time"
)

// TestClusterConfig: the cluster section is optional (nil without it),
// takes its defaults, and tls is a bool or an object.
func TestClusterConfig(t *testing.T) {
	const head = "listeners: mx: addr: \"127.0.0.1:2525\"\n"
	for _, tc := range []struct {
		name, src string
		want      *Cluster
		err       string
	}{
		{name: "absent", src: head},
		{name: "minimal", src: head + `cluster: redis: addrs: ["127.0.0.1:6379"]`,
			want: &Cluster{Redis: ClusterRedis{Addrs: []string{"127.0.0.1:6379"}, KeyPrefix: "cuemta"}, LeaseTTL: Duration(10 * time.Second)}},
		{name: "full", src: head + `cluster: {
	redis: {addrs: ["r1:6379", "r2:6379"], username: "mta", password: "pw", tls: true, db: 2, keyPrefix: "eu"}
	node: "mta-0"
	leaseTTL: "5s"
}`, want: &Cluster{Redis: ClusterRedis{Addrs: []string{"r1:6379", "r2:6379"}, Username: "mta", Password: "pw",
			TLS: RedisTLS{Enabled: true}, DB: 2, KeyPrefix: "eu"}, Node: "mta-0", LeaseTTL: Duration(5 * time.Second)}},
		{name: "tls object", src: head + `cluster: redis: {addrs: ["r:6380"], tls: {ca: "/etc/ca.pem", serverName: "redis.example.com"}}`,
			want: &Cluster{Redis: ClusterRedis{Addrs: []string{"r:6380"}, KeyPrefix: "cuemta",
				TLS: RedisTLS{Enabled: true, CA: "/etc/ca.pem", ServerName: "redis.example.com"}}, LeaseTTL: Duration(10 * time.Second)}},
		{name: "no addrs", src: head + `cluster: redis: addrs: []`, err: "addrs"},
		{name: "bad prefix", src: head + `cluster: redis: {addrs: ["r:1"], keyPrefix: "a{b}"}`, err: "keyPrefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadSource("c.cue", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, want := cfg.Cluster, tc.want
			if (got == nil) != (want == nil) {
				t.Fatalf("cluster = %+v, want %+v", got, want)
			}
			if got == nil {
				return
			}
			if strings.Join(got.Redis.Addrs, ",") != strings.Join(want.Redis.Addrs, ",") || got.Redis.Username != want.Redis.Username ||
				got.Redis.Password != want.Redis.Password || got.Redis.TLS != want.Redis.TLS || got.Redis.DB != want.Redis.DB ||
				got.Redis.KeyPrefix != want.Redis.KeyPrefix || got.Node != want.Node || got.LeaseTTL != want.LeaseTTL {
				t.Errorf("cluster = %+v, want %+v", *got, *want)
			}
		})
	}
}
