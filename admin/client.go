package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client calls the admin API of a running cuemta. It speaks the requests
// this package's Server accepts: JSON bodies with Content-Type
// application/json (state-changing requests need it when there is no
// token), the bearer token, and the actor header the action log records.
type Client struct {
	addr  string // as configured, for messages
	base  string // http://host:port
	token string
	actor string
	http  *http.Client
}

// clientTimeout bounds one call. Reloads evaluate the whole config and so
// get minutes, not seconds.
const clientTimeout = 2 * time.Minute

// maxReplyBytes bounds a reply read into memory (a queue listing of a
// large spool is the largest).
const maxReplyBytes = 64 << 20

// NewClient returns a client for the API listening on addr (admin.addr:
// a wildcard address is reached on loopback). actor names who acts, for
// the action log ("cli:alice"); "" leaves the server's default.
func NewClient(addr, token, actor string) (*Client, error) {
	dial, err := DialAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	return &Client{addr: addr, base: "http://" + dial, token: token, actor: actor,
		http: &http.Client{Timeout: clientTimeout}}, nil
}

// Addr is the address the client was made for, as given.
func (c *Client) Addr() string { return c.addr }

// DialAddr is the address to connect to for a listen address: a wildcard
// host (":25", "0.0.0.0", "::") is reached on loopback.
func DialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("bad address %q: want HOST:PORT", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// APIError is an error reply of the API: its HTTP status and the
// {"error", "detail"} body every error of this API carries.
type APIError struct {
	Status int
	Msg    string          `json:"error"`
	Detail json.RawMessage `json:"detail"`
	Body   []byte          // the whole reply body
}

func (e *APIError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	// A string detail is a hint worth showing; lists and objects are
	// summarised by the message already.
	var detail string
	if len(e.Detail) > 0 && json.Unmarshal(e.Detail, &detail) == nil && detail != "" {
		msg += " (" + detail + ")"
	}
	return msg
}

// UnreachableError says that no server answered at the address.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach cuemta admin API at %s: is `cuemta serve` running? (%v)", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Do sends a request with an optional JSON body. A 2xx reply is decoded
// into out (when not nil) and also returned raw, for callers that print
// it as it came; any other reply is an *APIError, a refused connection an
// *UnreachableError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// The server refuses a state-changing request that is not JSON (a web
	// form cannot send JSON, see csrf.go); Host is the loopback address
	// dialled.
	if in != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.actor != "" {
		req.Header.Set(actorHeader, c.actor)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, &UnreachableError{Addr: c.addr, Err: opErr.Err}
		}
		return nil, fmt.Errorf("%s %s on the admin API at %s: %w", method, path, c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return nil, fmt.Errorf("read the reply of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode, Body: data}
		if json.Unmarshal(data, e) != nil || e.Msg == "" {
			e.Msg = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
		}
		return nil, e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("unexpected reply to %s %s from %s: %w", method, path, c.addr, err)
		}
	}
	return data, nil
}
