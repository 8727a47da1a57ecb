package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/cuemta/cuemta/internal/testpki"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCA makes a CA and a server certificate from it for names.
func testCA(t *testing.T, names ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	ca := testpki.Issue(t, testpki.Spec{CommonName: "test CA", CA: true}, nil)
	leaf := testpki.Issue(t, testpki.Spec{CommonName: names[0], DNSNames: names}, ca)
	return ca.Pool(), leaf.TLS()
}

// hosts resolves every name to one address.
type hosts map[string]netip.Addr

func (h hosts) LookupHost(_ context.Context, host string) ([]netip.Addr, error) {
	if a, ok := h[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, errors.New("no such host " + host)
}

func TestFetch(t *testing.T) {
	const good = "version: STSv1\nmode: enforce\nmx: mx.x.test\nmax_age: 86400\n"
	tests := []struct {
		name    string
		certFor string
		handler http.HandlerFunc
		want    string
		kind    error
		detail  string
	}{
		{name: "good", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/mta-sts.txt" || !strings.HasPrefix(r.Host, "mta-sts.x.test:") {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte(good))
		}, want: good},
		{name: "wrong content type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(good))
		}, kind: ErrInvalid, detail: "Content-Type"},
		{name: "oversized", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(good + strings.Repeat("x: y\n", MaxPolicySize/5+1)))
		}, kind: ErrInvalid, detail: "larger than 65536"},
		{name: "redirect not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.test/policy.txt", http.StatusFound)
		}, kind: ErrFetch, detail: "redirects are not followed"},
		{name: "not found", handler: http.NotFound, kind: ErrFetch, detail: "404"},
		{name: "certificate for another name", certFor: "www.x.test", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(good))
		}, kind: ErrFetch, detail: "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.certFor
			if name == "" {
				name = "mta-sts.x.test"
			}
			pool, cert := testCA(t, name)
			srv := httptest.NewUnstartedServer(tc.handler)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			srv.StartTLS()
			defer srv.Close()
			host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			p, _ := strconv.Atoi(port)
			f := &Fetcher{Resolver: hosts{"mta-sts.x.test": netip.MustParseAddr(host)}, Roots: pool, Port: p, Timeout: 5 * time.Second}
			body, err := f.Fetch(context.Background(), "x.test")
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.detail) {
					t.Fatalf("Fetch = %q, %v; want %v mentioning %q", body, err, tc.kind, tc.detail)
				}
				return
			}
			if err != nil || body != tc.want {
				t.Fatalf("Fetch = %q, %v; want %q", body, err, tc.want)
			}
		})
	}
}

func TestFetchUntrustedRoot(t *testing.T) {
	_, cert := testCA(t, "mta-sts.x.test")
	other, _ := testCA(t, "mta-sts.x.test")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	f := &Fetcher{Resolver: hosts{"mta-sts.x.test": netip.MustParseAddr(host)}, Roots: other, Port: p}
	if _, err := f.Fetch(context.Background(), "x.test"); !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("Fetch from a server whose CA is not trusted: %v", err)
	}
}
