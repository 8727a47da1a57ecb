package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// ErrFetch: the policy could not be retrieved (TLS-RPT
// "sts-policy-fetch-error", RFC 8460 §4.3.2.2).
var ErrFetch = errors.New("MTA-STS policy fetch failed")

// Limits of a policy fetch (RFC 8461 §3.3).
const (
	// MaxPolicySize: "senders SHOULD limit the size of the policy body
	// they accept, for example to 64 KiB" — a larger body is refused.
	MaxPolicySize = 64 << 10
	// DefaultFetchTimeout bounds the whole fetch: connect, TLS, request
	// and body ("a timeout on the HTTPS connection").
	DefaultFetchTimeout = 30 * time.Second
	// wellKnown is the policy's path on mta-sts.<domain>.
	wellKnown = "/.well-known/mta-sts.txt"
)

// HostResolver gives a host's addresses: the delivery resolver, never the
// system's, so tests and operators decide DNS.
type HostResolver interface {
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
}

// Fetcher gets policy bodies over HTTPS.
type Fetcher struct {
	Resolver HostResolver
	// Roots trust the policy host's certificate; nil: the system roots.
	Roots *x509.CertPool
	// Port is the HTTPS port; 0 means 443 (other ports are for tests
	// and proxies).
	Port    int
	Timeout time.Duration // 0: DefaultFetchTimeout
}

// Fetch retrieves https://mta-sts.<domain>/.well-known/mta-sts.txt and
// returns its body (RFC 8461 §3.3): the certificate must be valid for
// mta-sts.<domain>, a redirect is not followed, the answer must be 200
// with Content-Type text/plain and at most MaxPolicySize bytes. Errors
// wrap ErrFetch (not retrieved) or ErrInvalid (retrieved, not a policy).
func (f *Fetcher) Fetch(ctx context.Context, domain string) (string, error) {
	host := "mta-sts." + domain
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := f.Port
	if port == 0 {
		port = 443
	}
	tr := &http.Transport{
		Proxy:             nil, // the policy host is reached directly: a proxy would be another party to trust
		DialContext:       f.dial,
		TLSClientConfig:   &tls.Config{RootCAs: f.Roots, ServerName: host, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true, // one fetch per domain per max_age: nothing to keep
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "https://" + net.JoinHostPort(host, strconv.Itoa(port)) + wellKnown
	if port == 443 {
		url = "https://" + host + wellKnown
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrFetch, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" {
			return "", fmt.Errorf("%w: %s answered %s (to %s): redirects are not followed (RFC 8461 §3.3)", ErrFetch, url, resp.Status, loc)
		}
		return "", fmt.Errorf("%w: %s answered %s", ErrFetch, url, resp.Status)
	}
	// RFC 8461 §3.2: the policy is served as "text/plain".
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return "", fmt.Errorf("%w: %s has Content-Type %q, want text/plain", ErrInvalid, url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return "", fmt.Errorf("%w: %s: reading the body: %v", ErrFetch, url, err)
	}
	if len(body) > MaxPolicySize {
		return "", fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, url, MaxPolicySize)
	}
	return string(body), nil
}

// dial connects to the policy host's addresses, from the delivery
// resolver, in order.
func (f *Fetcher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := f.Resolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	return nil, errors.Join(errs...)
}
