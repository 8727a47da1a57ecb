package config

import "testing"

// TestDSNMode: the most specific setting wins (recipient domain, "*",
// tenant, listener), and mail of no known listener is mailed.
func TestDSNMode(t *testing.T) {
	c := &Config{
		Listeners: map[string]*Listener{"mx": {DSN: DSNMail}, "api": {DSN: DSNNone}},
		Delivery: Delivery{DSN: DeliveryDSN{
			Routes:  map[string]string{"quiet.test": DSNNone, "Loud.Test": DSNMail},
			Tenants: map[string]string{"platform": DSNNone, "shop": DSNMail},
		}},
	}
	star := &Config{Listeners: c.Listeners, Delivery: Delivery{DSN: DeliveryDSN{
		Routes: map[string]string{"*": DSNNone, "b.test": DSNMail}, Tenants: c.Delivery.DSN.Tenants}}}
	tests := []struct {
		name                     string
		cfg                      *Config
		listener, tenant, domain string
		want                     string
	}{
		{"listener mail", c, "mx", "", "b.test", DSNMail},
		{"listener none", c, "api", "", "b.test", DSNNone},
		{"unknown listener", c, "gone", "", "b.test", DSNMail},
		{"tenant over listener", c, "api", "shop", "b.test", DSNMail},
		{"tenant none", c, "mx", "platform", "b.test", DSNNone},
		{"domain over tenant", c, "mx", "shop", "quiet.test", DSNNone},
		{"domain key normalised", c, "api", "platform", "loud.test", DSNMail},
		{"domain case", c, "mx", "", "QUIET.test", DSNNone},
		{"star", star, "mx", "shop", "c.test", DSNNone},
		{"domain over star", star, "api", "platform", "b.test", DSNMail},
	}
	for _, tt := range tests {
		if got := tt.cfg.DSNMode(tt.listener, tt.tenant, tt.domain); got != tt.want {
			t.Errorf("%s: DSNMode(%q, %q, %q) = %q, want %q", tt.name, tt.listener, tt.tenant, tt.domain, got, tt.want)
		}
	}
	if c.DSNMailed("mx", "", "bob@quiet.test") || !c.DSNMailed("mx", "", "bob@b.test") {
		t.Error("DSNMailed does not follow the recipient's domain")
	}
}
