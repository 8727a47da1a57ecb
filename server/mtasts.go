package server

import (
	"context"
	"path/filepath"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/delivery/mtasts"
	"github.com/cuemta/cuemta/delivery/mx"
)

// openMTASTS opens the MTA-STS policy cache beside the spool
// (<spool.dir>/mta-sts.json, so the policies in force survive a restart:
// RFC 8461 §10.2). The policy host's port and the trust roots are read
// from the config in force at each fetch, so a reload applies them; the
// cache size is the one at start.
func (s *Server) openMTASTS(cfg *config.Config, resolver *mx.Resolver) (delivery.STSPolicies, error) {
	c, err := mtasts.New(mtasts.Options{
		Resolver:   resolver,
		File:       filepath.Join(cfg.Spool.Dir, "mta-sts.json"),
		MaxEntries: cfg.Delivery.MTASTS.CacheSize,
		Logger:     s.logger,
		Fetch: func(ctx context.Context, domain string) (string, error) {
			pol := s.policy()
			f := &mtasts.Fetcher{Resolver: resolver, Roots: pol.TLSRoots, Port: pol.Config.Delivery.MTASTS.Port}
			return f.Fetch(ctx, domain)
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
