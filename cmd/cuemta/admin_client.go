package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/cuemta/cuemta/config"
)

// defaultAdminAddr is admin.addr of the embedded default config (checked
// by a test), used without -c so that the commands need not evaluate it.
const defaultAdminAddr = "127.0.0.1:8025"

// Environment variables read by the client commands, for scripts and for
// sendmail run by programs that cannot pass flags.
const (
	envConfig     = "CUEMTA_CONFIG"      // default for -c
	envAdminToken = "CUEMTA_ADMIN_TOKEN" // default for --token (keeps it out of ps)
)

// adminFlags are the flags that locate the admin API, shared by the
// commands that use it.
type adminFlags struct {
	config string
	addr   string
	token  string
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "c", os.Getenv(envConfig), "config `PATH` to read admin.addr and admin.token from (default $"+envConfig+")")
	fs.StringVar(&f.addr, "admin", "", "admin API `HOST:PORT` (default: admin.addr of the config, else "+defaultAdminAddr+")")
	fs.StringVar(&f.token, "token", "", "admin API bearer `TOKEN` (default: admin.token of the config, else $"+envAdminToken+")")
}

// client resolves the flags: --admin wins over the config's admin.addr;
// --token over $CUEMTA_ADMIN_TOKEN over the config's admin.token.
func (f *adminFlags) client() (*adminClient, error) {
	addr, token := f.addr, f.token
	if addr == "" && f.config != "" {
		cfg, err := config.Load(f.config)
		if err != nil {
			return nil, fmt.Errorf("cannot read admin.addr from %s: %w", f.config, err)
		}
		addr = cfg.Admin.Addr
		if token == "" {
			token = cfg.Admin.Token
		}
	}
	if addr == "" {
		addr = defaultAdminAddr
	}
	if token == "" {
		token = os.Getenv(envAdminToken)
	}
	return newAdminClient(addr, token)
}

// adminClient calls the admin API of a running cuemta.
type adminClient struct {
	addr  string // as configured, for messages
	base  string // http://host:port
	token string
	actor string
	http  *http.Client
}

func newAdminClient(addr, token string) (*adminClient, error) {
	dial, err := loopbackDialAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	return &adminClient{
		addr:  addr,
		base:  "http://" + dial,
		token: token,
		actor: "cli:" + userName(),
		// Reloads evaluate the whole config: give them time.
		http: &http.Client{Timeout: 2 * time.Minute},
	}, nil
}

func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, v := range []string{"USER", "LOGNAME"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return "unknown"
}

// apiError is an error response of the admin API.
type apiError struct {
	Status int
	Msg    string          `json:"error"`
	Detail json.RawMessage `json:"detail"`
	Body   []byte          // the whole response body
}

func (e *apiError) Error() string {
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
	if e.Status == http.StatusUnauthorized {
		msg += "; check admin.token in the config, --token or $" + envAdminToken
	}
	return msg
}

// unreachableError says that no server answered.
type unreachableError struct {
	addr string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach cuemta admin API at %s: is `cuemta serve` running? (%v)", e.addr, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// call sends a request with an optional JSON body and returns the raw
// response body of a 2xx reply, or an *apiError or *unreachableError.
func (c *adminClient) call(method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// The admin API refuses a state-changing request that is not JSON (a
	// web form cannot send JSON); Host is the loopback address dialled.
	if in != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("X-Cuemta-Actor", c.actor)
	resp, err := c.http.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, &unreachableError{addr: c.addr, err: opErr.Err}
		}
		return nil, fmt.Errorf("%s %s on the admin API at %s: %w", method, path, c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the reply of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode, Body: data}
		if json.Unmarshal(data, e) != nil || e.Msg == "" {
			e.Msg = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
		}
		return nil, e
	}
	return data, nil
}

// do calls and decodes a JSON reply into out; it also returns the raw
// reply for --json.
func (c *adminClient) do(method, path string, in, out any) ([]byte, error) {
	data, err := c.call(method, path, in)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("unexpected reply from %s: %w", c.addr, err)
		}
	}
	return data, nil
}

// reportError prints err for a command and returns its exit status: 1, as
// for every failed command.
func reportError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "cuemta %s: %v\n", cmd, err)
	return 1
}
