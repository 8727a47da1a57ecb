package config

import (
	"regexp"
	"sort"
	"strings"
)

// Error is one configuration problem at a position.
type Error struct {
	Pos Pos
	Msg string
}

func (e Error) Error() string {
	if !e.Pos.IsValid() {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Errors is every problem found in a configuration, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return es[i].Msg < es[j].Msg
	})
}

// expectations translate the schema's patterns, as CUE prints them in
// errors, into what an operator should write instead.
var expectations = []struct{ fragment, want string }{
	{`{0,31}|[0-9]{1,10})$`, `a user or group name such as "cuemta" (letters, digits, '.', '_', '-'; at most 32 characters), or a numeric id`},
	{`(ns|us|µs|ms|s|m|h))+$`, `a duration such as "30s", "5m" or "1h30m"`},
	{`/(s|m|h)$`, `a rate such as "600/m" (a number per s, m or h)`},
	{`[0-9]{1,5}$`, `an address host:port such as "127.0.0.1:2525" or "[::1]:25"`},
	{`\\$2[aby]`, `a bcrypt password hash ("$2a$…", "$2b$…" or "$2y$…")`},
	{`^[245]\\.`, `an enhanced status code such as "4.7.1"`},
	{`{0,62}$`, `a name of letters, digits, '.', '_' or '-' (at most 63 characters)`},
	{`{0,61}[A-Za-z0-9])?$`, `a domain name such as "example.com"`},
	{`net.IPCIDR`, `a network in CIDR form such as "192.0.2.0/24"`},
	{`net.IP`, `an IP address such as "192.0.2.1"`},
	{`net.FQDN`, `a host name such as "mx.example.com"`},
	{`[A-Za-z0-9._-]*$`, `a DKIM selector (letters, digits, '.', '_', '-')`},
	{`suppression|admin|reputation)$`, `an event type: reception, delivery, transient, bounce, expiry, suspension, complaint, suppression, admin or reputation`},
	{`^https?://`, `an http:// or https:// URL such as "https://hooks.example.com/cuemta"`},
	{`^[Xx]-`, `an X- header name such as "X-Campaign-Ref"`},
}

var (
	invalidValueRE = regexp.MustCompile(`^invalid value (.*?) \((?:does not match|does not satisfy) (.*)\)$`)
	outOfBoundRE   = regexp.MustCompile(`^invalid value (.*?) \(out of bound (.*)\)$`)
	mismatchRE     = regexp.MustCompile(`^conflicting values (.*) and (.*) \(mismatched types (\S+) and (\S+)\)$`)
	incompleteRE   = regexp.MustCompile(`^incomplete value (.*)$`)
)

// explain rewrites a CUE error message in an operator's words, prefixed
// with the config path it concerns.
func explain(path []string, msg string) string {
	if len(path) > 0 && strings.HasPrefix(path[0], "#") {
		path = path[1:]
	}
	where := strings.Join(path, ".")
	prefix := ""
	if where != "" {
		prefix = where + ": "
	}
	switch {
	case msg == "field not allowed":
		field := where
		if len(path) > 0 {
			field = path[len(path)-1]
		}
		parent := strings.Join(path[:max(len(path)-1, 0)], ".")
		if parent == "" {
			parent = "the top level"
		}
		return prefix + "unknown field " + quote(field) + " (not allowed in " + parent + "; check its spelling and the schema)"
	case invalidValueRE.MatchString(msg):
		m := invalidValueRE.FindStringSubmatch(msg)
		return prefix + "invalid value " + m[1] + ": expected " + expectation(m[2])
	case outOfBoundRE.MatchString(msg):
		m := outOfBoundRE.FindStringSubmatch(msg)
		if strings.HasPrefix(m[2], "=~") {
			return prefix + "invalid value " + m[1] + ": expected " + expectation(m[2])
		}
		if len(path) > 0 && path[len(path)-1] == "port" {
			// #Port: CUE names only the bound that failed.
			return prefix + m[1] + " is out of range: expected a TCP port from 1 to 65535"
		}
		return prefix + m[1] + " is out of range: must be " + m[2]
	case mismatchRE.MatchString(msg):
		m := mismatchRE.FindStringSubmatch(msg)
		return prefix + "wrong type: expected " + typeWord(m[4]) + ", got " + typeWord(m[3]) + " " + m[1]
	case incompleteRE.MatchString(msg):
		m := incompleteRE.FindStringSubmatch(msg)
		return prefix + "required value missing: expected " + m[1]
	}
	return prefix + msg
}

// expectation describes a schema constraint in words where it can.
func expectation(constraint string) string {
	for _, x := range expectations {
		if strings.Contains(constraint, x.fragment) {
			return x.want
		}
	}
	return "a value matching " + constraint
}

func typeWord(t string) string {
	switch t {
	case "int":
		return "an integer"
	case "float", "number":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "struct":
		return "a struct {…}"
	case "list":
		return "a list […]"
	}
	return t
}

func quote(s string) string { return `"` + s + `"` }
