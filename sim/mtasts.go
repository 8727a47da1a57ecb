package sim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// startMTASTS starts an HTTPS policy host on the first MX address of
// every site with an MTA-STS policy, all on one port (with port 0, the
// first picks a free one and the others follow it).
func (s *Sim) startMTASTS() error {
	var names []string
	for _, name := range slices.Sorted(maps.Keys(s.sites)) {
		if s.sites[name].cfg.MTASTS != nil {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	s.stsFetches = map[string]int{}
	port := s.cfg.MTASTSPort
	for _, name := range names {
		st := s.sites[name]
		ip := netip.MustParseAddr(st.cfg.MX[0].IP)
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			return fmt.Errorf("sim: MTA-STS policy host of site %s: %w", name, err)
		}
		if port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		srv := &http.Server{Handler: s.policyHandler(name), TLSConfig: &tls.Config{Certificates: s.tlsConfig.Certificates}}
		s.httpSrv = append(s.httpSrv, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Debug("mta-sts policy host", "site", name, "err", err)
			}
		}()
	}
	s.stsPort = port
	return nil
}

// policyHandler serves one site's policy at /.well-known/mta-sts.txt for
// Host mta-sts.<one of its domains>.
func (s *Sim) policyHandler(site string) http.Handler {
	st := s.sites[site]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		d, ok := strings.CutPrefix(strings.ToLower(host), "mta-sts.")
		if r.URL.Path != "/.well-known/mta-sts.txt" || !ok || !slices.ContainsFunc(st.cfg.Domains, func(x string) bool { return strings.EqualFold(x, d) }) {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		s.stsFetches[site]++
		p := *st.cfg.MTASTS
		s.mu.Unlock()
		s.log.Debug("mta-sts policy fetched", "site", site, "host", host)
		if p.Redirect != "" {
			http.Redirect(w, r, p.Redirect, http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", p.ContentType)
		w.Write([]byte(p.Policy))
	})
}

// MTASTSPort is the policy hosts' HTTPS port (0 without any).
func (s *Sim) MTASTSPort() int { return s.stsPort }

// PolicyFetches is how many times a site's MTA-STS policy was served.
func (s *Sim) PolicyFetches(site string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stsFetches[site]
}
