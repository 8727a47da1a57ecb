package server

import (
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/cuemta/cuemta/config"
)

// Sockets are the listening sockets bound before the server runs: serve
// started as root binds them (ports below 1024 included) and then drops
// its privileges; the server takes them over instead of binding again.
// A socket the server does not take (the config changed in between) is
// closed once the listeners are up.
type Sockets struct {
	admin     net.Listener
	adminAddr string
	smtp      map[string]boundSocket // by listener name
}

type boundSocket struct {
	addr string // as configured
	ln   net.Listener
}

// Bind binds the admin socket and every SMTP listener's socket of cfg.
// On error nothing stays bound.
func Bind(cfg *config.Config) (*Sockets, error) {
	b := &Sockets{smtp: map[string]boundSocket{}, adminAddr: cfg.Admin.Addr}
	ln, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	b.admin = ln
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners)) {
		l := cfg.Listeners[name]
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("listener %s: %w", name, err)
		}
		b.smtp[name] = boundSocket{addr: l.Addr, ln: ln}
	}
	return b, nil
}

// Close closes every socket not taken by a server.
func (b *Sockets) Close() {
	if b == nil {
		return
	}
	if b.admin != nil {
		b.admin.Close()
		b.admin = nil
	}
	for name, s := range b.smtp {
		s.ln.Close()
		delete(b.smtp, name)
	}
}

// UseSockets makes the server take its sockets from b (nil: bind its own).
// Call it before Run.
func (s *Server) UseSockets(b *Sockets) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound = b
}

// listen returns the socket for listener l: the one bound before the
// start when its name and address match, otherwise a new one.
func (s *Server) listen(l *config.Listener) (net.Listener, error) {
	s.mu.Lock()
	if b := s.bound; b != nil {
		if bs, ok := b.smtp[l.Name]; ok && bs.addr == l.Addr {
			delete(b.smtp, l.Name)
			s.mu.Unlock()
			return bs.ln, nil
		}
	}
	s.mu.Unlock()
	return net.Listen("tcp", l.Addr)
}

// listenAdmin is listen for the admin API.
func (s *Server) listenAdmin(addr string) (net.Listener, error) {
	s.mu.Lock()
	if b := s.bound; b != nil && b.admin != nil && b.adminAddr == addr {
		ln := b.admin
		b.admin = nil
		s.mu.Unlock()
		return ln, nil
	}
	s.mu.Unlock()
	return net.Listen("tcp", addr)
}

// closeUnusedSockets closes the sockets bound before the start that no
// listener took.
func (s *Server) closeUnusedSockets() {
	s.mu.Lock()
	b := s.bound
	s.bound = nil
	s.mu.Unlock()
	b.Close()
}
