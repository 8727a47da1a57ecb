package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"

	"github.com/cuemta/cuemta/admin"
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

// client returns the client the flags locate.
func (f *adminFlags) client() (*adminClient, error) {
	addr, token, err := f.resolve()
	if err != nil {
		return nil, err
	}
	return newAdminClient(addr, token)
}

// resolve finds the address and token: --admin wins over the config's
// admin.addr; --token over $CUEMTA_ADMIN_TOKEN over the config's
// admin.token.
func (f *adminFlags) resolve() (addr, token string, err error) {
	addr, token = f.addr, f.token
	if addr == "" && f.config != "" {
		cfg, err := config.Load(f.config)
		if err != nil {
			return "", "", fmt.Errorf("cannot read admin.addr from %s: %w", f.config, err)
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
	return addr, token, nil
}

// adminClient is the admin API client the commands share.
type adminClient = admin.Client

func newAdminClient(addr, token string) (*adminClient, error) {
	return admin.NewClient(addr, token, "cli:"+userName())
}

// apiError is an error reply of the admin API.
type apiError = admin.APIError

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

// call runs one request of a command; see admin.Client.Do.
func call(c *adminClient, method, path string, in, out any) ([]byte, error) {
	return c.Do(context.Background(), method, path, in, out)
}

// adminSubcommand does what every `cuemta GROUP NAME [flags]` command of
// the admin API does first: usage for no NAME (exit 2) or help (exit 0),
// refusal of an unknown NAME (exit 2), and the flag set with the admin
// flags registered. fs is nil when the command is over, with its exit
// status in code.
func adminSubcommand(group, usage string, args []string, known func(string) bool, stderr io.Writer) (name string, fs *flag.FlagSet, af *adminFlags, code int) {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return "", nil, nil, 2
		}
		return "", nil, nil, 0
	}
	name = args[0]
	if !known(name) {
		fmt.Fprintf(stderr, "cuemta %s: unknown command %q\n%s", group, name, usage)
		return "", nil, nil, 2
	}
	fs = flag.NewFlagSet(group+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	af = &adminFlags{}
	af.register(fs)
	return name, fs, af, 0
}

// reportError prints err for a command and returns its exit status: 1, as
// for every failed command.
func reportError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "cuemta %s: %v\n", cmd, err)
	var e *apiError
	if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
		fmt.Fprintf(stderr, "cuemta %s: check admin.token in the config, --token or $%s\n", cmd, envAdminToken)
	}
	return 1
}
