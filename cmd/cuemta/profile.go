package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/server"
)

// runProfile implements `cuemta profile -c PATH DOMAIN_OR_MXHOST [--json]`.
// An argument is taken as an MX host when it matches an MX pattern of some
// profile (or --mx is given), else as a recipient domain; a domain that
// the config routes statically (routes[domain], else the smarthost
// routes["*"]) is shown as that route, as delivery sends it, and --route
// shows a route host directly.
func runProfile(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config `PATH` (default: the embedded default config)")
	asJSON := fs.Bool("json", false, "print JSON")
	mx := fs.String("mx", "", "MX `HOST` of the destination, in addition to its domain")
	route := fs.String("route", "", "a static route or smarthost `HOST[:PORT]` to show instead of a destination")
	source := fs.String("source", "", "egress source `NAME` (applies per-source overrides)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cuemta profile [-c PATH] [--mx HOST] [--source NAME] [--json] DOMAIN_OR_MXHOST")
		fmt.Fprintln(stderr, "       cuemta profile [-c PATH] [--source NAME] [--json] --route HOST[:PORT]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(interleaved(fs, args)); err != nil {
		return 2
	}
	if (*route == "") != (fs.NArg() == 1) || fs.NArg() > 1 || (*route != "" && *mx != "") {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var eff *config.Effective
	dest, via := strings.ToLower(fs.Arg(0)), ""
	switch {
	case *route != "":
		eff, err = cfg.ResolveRoute(*route, *source)
		dest = *route
	case *mx != "":
		eff, err = cfg.Resolve(dest, []string{*mx}, *source)
	case looksLikeMX(cfg, dest):
		eff, err = cfg.Resolve("", []string{dest}, *source)
	default:
		if via = routeOf(cfg, dest); via != "" {
			eff, err = cfg.ResolveRoute(via, *source)
		} else {
			eff, err = cfg.Resolve(dest, nil, *source)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(eff); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	printProfile(stdout, eff, dest, via, *mx != "" || eff.Route != "" || looksLikeMX(cfg, dest))
	return 0
}

// printProfile writes the effective profile as a table: the destination's
// own settings (each site, per source), then the limits of its provider
// (all its sites together, per source), each with where it was set.
func printProfile(w io.Writer, eff *config.Effective, dest, via string, haveMX bool) {
	fmt.Fprintf(w, "destination: %s\n", dest)
	switch {
	case via != "":
		fmt.Fprintf(w, "route:       %s (static route for this domain)\n", via)
	case eff.Route != "":
		fmt.Fprintf(w, "route:       %s (static route)\n", eff.Route)
	}
	fmt.Fprintf(w, "profiles:    %s (most specific first)\n", strings.Join(eff.Chain, " > "))
	switch {
	case eff.Provider != "":
		fmt.Fprintf(w, "provider:    %s (provider limits hold for all its sites together, per source)\n", eff.Provider)
	case haveMX:
		fmt.Fprintln(w, "provider:    none (no profile matches the MX host by a \"*.suffix\" pattern)")
	default:
		fmt.Fprintln(w, "provider:    unknown without MX hosts (providers match MX hosts: give --mx HOST)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM\tAT")
	for _, f := range flatten(eff.Settings) {
		o := eff.Origin[f.name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.name, f.value, o.Layer, o.At)
	}
	if eff.Provider != "" {
		set := map[string]string{}
		for _, f := range flatten(eff.ProviderLimits) {
			set[f.name] = f.value
		}
		for _, name := range []string{"maxConnections", "messageRate", "connectionRate"} {
			o, ok := eff.Origin["provider."+name]
			v := set[name]
			if !ok || v == "" {
				v, o = "unlimited", config.Origin{Layer: "-", At: "-"}
			}
			fmt.Fprintf(tw, "provider.%s\t%s\t%s\t%s\n", name, v, o.Layer, o.At)
		}
	}
	tw.Flush()
}

// routeOf is the static route delivery takes for a recipient domain:
// routes[domain], else the smarthost routes["*"], else "".
func routeOf(cfg *config.Config, domain string) string {
	if r := cfg.Routes[domain]; r != "" {
		return r
	}
	return cfg.Routes["*"]
}

// looksLikeMX reports whether dest is an MX host that some profile names,
// rather than a recipient domain.
func looksLikeMX(cfg *config.Config, dest string) bool {
	for _, p := range cfg.Profiles {
		for _, d := range p.Match.Domains {
			if strings.EqualFold(d, dest) {
				return false
			}
		}
	}
	for _, m := range cfg.Match("", []string{dest}) {
		if m.Level == config.LevelSite || m.Level == config.LevelProvider {
			return true
		}
	}
	return false
}

type setting struct{ name, value string }

// flatten lists settings (a ProfileSettings or ProviderLimits) by their
// CUE path, in order.
func flatten(settings any) []setting {
	b, _ := json.Marshal(settings)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	var out []setting
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if sub, ok := v.(map[string]any); ok {
			keys := make([]string, 0, len(sub))
			for k := range sub {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(prefix+k+".", sub[k])
			}
			return
		}
		vb, _ := json.Marshal(v)
		out = append(out, setting{strings.TrimSuffix(prefix, "."), string(vb)})
	}
	walk("", m)
	return out
}

// interleaved moves flags after positional arguments to the front, so
// `profile gmail.com --json` works like `profile --json gmail.com`.
func interleaved(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := fs.Lookup(name); f != nil {
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
					continue
				}
				if i+1 < len(args) {
					flags = append(flags, args[i+1])
					i++
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.LoadDefault()
	}
	return config.Load(path)
}

// loadPolicy loads a config and compiles its rules, printing any problem
// to stderr one per line. Unlike serve and vet it does not read DKIM keys
// or TLS certificates, so policy tests run in CI without the secrets.
func loadPolicy(path string, stderr io.Writer) (*config.Config, *rules.Set, bool) {
	cfg, err := loadConfig(path)
	if err == nil {
		var set *rules.Set
		if set, err = rules.Compile(cfg); err == nil {
			return cfg, set, true
		}
	}
	for _, l := range server.ErrorLines(err) {
		fmt.Fprintln(stderr, l)
	}
	return nil, nil, false
}
