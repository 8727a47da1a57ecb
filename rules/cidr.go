package rules

import (
	"net/netip"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// `in` is a reserved word of CEL, so `client_ip.in([...])` does not parse.
// The compiler rewrites each `.in(` outside string literals to `.iN(`
// (same length, so error columns stay right) and declares iN as the
// CIDR membership function.
const fnInCIDR = "iN"

// inCIDROption declares ip.in(["192.0.2.0/24", "2001:db8::/32"]): whether
// the address is in any of the networks. An address that does not parse
// (the empty client_ip of a test or a Unix socket) is in none; a network
// that does not parse is a run-time error (a constant list is checked at
// compile time, see checkCIDRLists).
func inCIDROption() cel.EnvOption {
	return cel.Function(fnInCIDR, cel.MemberOverload("string_in_cidr_list",
		[]*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
		cel.BinaryBinding(inCIDR)))
}

func inCIDR(ipv, listv ref.Val) ref.Val {
	s, ok := ipv.(types.String)
	if !ok {
		return types.NewErr("in() needs an IP address string")
	}
	ip, err := netip.ParseAddr(strings.Trim(string(s), "[]"))
	if err != nil {
		return types.False
	}
	ip = ip.Unmap()
	l, ok := listv.(traits.Lister)
	if !ok {
		return types.NewErr("in() needs a list of networks")
	}
	it := l.Iterator()
	for it.HasNext() == types.True {
		n, ok := it.Next().(types.String)
		if !ok {
			return types.NewErr("in() needs a list of network strings")
		}
		p, err := parseNet(string(n))
		if err != nil {
			return types.NewErr("in(): %v", err)
		}
		if p.Contains(ip) {
			return types.True
		}
	}
	return types.False
}

// parseNet parses a CIDR prefix or a single address, unmapped.
func parseNet(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// rewriteIn replaces `.in(` (spaces allowed before the parenthesis) outside
// string literals with `.iN(`. It knows CEL's quoting: '…', "…", ”'…”',
// """…""", raw r-prefixed strings and backslash escapes.
func rewriteIn(src string) string {
	if !strings.Contains(src, ".in") {
		return src
	}
	b := []byte(src)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\'' || c == '"' {
			raw := i > 0 && (b[i-1] == 'r' || b[i-1] == 'R')
			q := string(c)
			if i+2 < len(b) && b[i+1] == c && b[i+2] == c {
				q = strings.Repeat(q, 3)
			}
			j := i + len(q)
			for j < len(b) {
				if !raw && b[j] == '\\' {
					j += 2
					continue
				}
				if strings.HasPrefix(string(b[j:]), q) {
					break
				}
				j++
			}
			i = j + len(q) - 1
			continue
		}
		if c == '.' && i+3 <= len(b) && string(b[i+1:i+3]) == "in" {
			k := i + 3
			for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
				k++
			}
			if k < len(b) && b[k] == '(' {
				b[i+2] = 'N'
			}
		}
	}
	return string(b)
}
