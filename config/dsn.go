package config

import (
	"strings"

	"github.com/cuemta/cuemta/internal/maildomain"
)

// DSN modes (listeners.*.dsn, delivery.dsn).
const (
	DSNMail = "mail" // notifications are mailed to the sender
	DSNNone = "none" // no notification mail; the events are logged
)

// DeliveryDSN is delivery.dsn: the DSN mode by recipient domain and by
// tenant.
type DeliveryDSN struct {
	Routes  map[string]string `json:"routes"`
	Tenants map[string]string `json:"tenants"`
}

// DSNMode is the DSN mode for one recipient of a message: the most
// specific setting wins, the recipient's domain in delivery.dsn.routes,
// then its "*", then delivery.dsn.tenants, then the listener's dsn.
// Mail of no listener (injected, or a listener since removed) defaults
// to DSNMail.
func (c *Config) DSNMode(listener, tenant, rcptDomain string) string {
	routes := c.Delivery.DSN.Routes
	if len(routes) > 0 {
		if d, err := maildomain.Normalize(rcptDomain); err == nil {
			for k, m := range routes {
				if k == "*" {
					continue
				}
				// Keys are normalised here rather than at load: the
				// map is small and read only when a DSN is due.
				if n, err := maildomain.Normalize(k); err == nil && n == d {
					return m
				}
			}
		}
		if m, ok := routes["*"]; ok {
			return m
		}
	}
	if m, ok := c.Delivery.DSN.Tenants[tenant]; ok && tenant != "" {
		return m
	}
	if l, ok := c.Listeners[listener]; ok && l != nil && l.DSN != "" {
		return l.DSN
	}
	return DSNMail
}

// DSNMailed reports whether notifications for the recipient rcpt are
// mailed (DSNMode is DSNMail).
func (c *Config) DSNMailed(listener, tenant, rcpt string) bool {
	return c.DSNMode(listener, tenant, rcptDomainOf(rcpt)) != DSNNone
}

func rcptDomainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
