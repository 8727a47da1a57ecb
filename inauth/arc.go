package inauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cuemta/cuemta/dkim"
)

// ARCResult is the outcome of a message's ARC chain (RFC 8617 §5.2): the
// sealers that handled it after its author's domain, each vouching for
// the authentication results it saw (a mailing list that rewrote the
// subject, breaking DKIM, says the message passed DKIM when it got it).
type ARCResult struct {
	// Result is "pass", "fail" or "none" (no ARC fields): RFC 8617 §4.4's
	// chain validation status.
	Result string
	// Instances is the number of ARC sets in the chain (0 to 50).
	Instances int
	// Sealers are the ARC-Seal d= of each set, instance 1 first; the last
	// is the sealer that handed the message to us. Set when the chain
	// passed.
	Sealers []string
	// Reason says why a chain failed.
	Reason string
}

// Sealer is the domain of the newest ARC-Seal of a chain that passed:
// the one a local policy decides to trust or not; "" otherwise.
func (r ARCResult) Sealer() string {
	if r.Result != ResultPass || len(r.Sealers) == 0 {
		return ""
	}
	return r.Sealers[len(r.Sealers)-1]
}

// maxARCInstances is RFC 8617 §4.2.1's limit on the instance number.
const maxARCInstances = 50

// arcFields are the ARC header fields' names (RFC 8617 §4.1).
const (
	arcSeal    = "ARC-Seal"
	arcMessage = "ARC-Message-Signature"
	arcAuthRes = "ARC-Authentication-Results"
)

// arcSet is one instance of the chain: its three fields, as received.
type arcSet struct {
	seal, message, authRes []byte
}

// verifyARC validates the ARC chain of msg (RFC 8617 §5.2): every set
// from 1 to the highest instance exactly once, the seals' cv values
// right (none for the first, pass after), the newest message signature
// and every seal verified against the sealers' DNS keys. A key that
// cannot be fetched fails the chain, as a chain that cannot be checked
// vouches for nothing.
func verifyARC(ctx context.Context, r *budgeted, msg []byte) ARCResult {
	fields, bodyStart := dkim.HeaderFields(msg)
	sets, n, err := collectARCSets(fields)
	if err != nil {
		return ARCResult{Result: ResultFail, Instances: n, Reason: err.Error()}
	}
	if n == 0 {
		return ARCResult{Result: ResultNone}
	}
	res := ARCResult{Result: ResultFail, Instances: n}
	v := arcVerifier{ctx: ctx, r: r, keys: map[string]keyOrError{}}
	seals := make([]tagList, n+1)
	for i := 1; i <= n; i++ {
		t, err := parseTagList(sets[i].seal)
		if err != nil {
			res.Reason = fmt.Sprintf("ARC-Seal i=%d: %v", i, err)
			return res
		}
		seals[i] = t
	}
	// §5.2 steps 2 and 3: a chain its newest sealer found failed stays
	// failed; otherwise the first seal says none and the others pass.
	if cv := strings.ToLower(seals[n]["cv"]); cv == "fail" {
		res.Reason = fmt.Sprintf("ARC-Seal i=%d says cv=fail", n)
		return res
	}
	for i := 1; i <= n; i++ {
		want := "pass"
		if i == 1 {
			want = "none"
		}
		if cv := strings.ToLower(seals[i]["cv"]); cv != want {
			res.Reason = fmt.Sprintf("ARC-Seal i=%d has cv=%s, want %s", i, cv, want)
			return res
		}
	}
	// §5.2 step 4: the newest message signature, over the message as it
	// is now; older ones may have been broken by later hops, by design.
	if err := v.checkMessageSignature(fields, msg[bodyStart:], sets[n].message); err != nil {
		res.Reason = fmt.Sprintf("ARC-Message-Signature i=%d: %v", n, err)
		return res
	}
	// §5.2 step 6: every seal, newest first.
	for i := n; i >= 1; i-- {
		if err := v.checkSeal(sets, i, seals[i]); err != nil {
			res.Reason = fmt.Sprintf("ARC-Seal i=%d: %v", i, err)
			return res
		}
	}
	res.Result = ResultPass
	for i := 1; i <= n; i++ {
		res.Sealers = append(res.Sealers, strings.ToLower(seals[i]["d"]))
	}
	return res
}

// collectARCSets groups the ARC fields by instance; n is the highest
// instance. Every instance from 1 to n must have exactly one field of
// each kind (RFC 8617 §4.2.1, §5.2 step 1).
func collectARCSets(fields []dkim.Field) (sets []arcSet, n int, err error) {
	type found struct {
		instance int
		kind     string
		raw      []byte
	}
	var all []found
	for _, f := range fields {
		var kind string
		switch {
		case bytes.EqualFold(f.Name, []byte(arcSeal)):
			kind = arcSeal
		case bytes.EqualFold(f.Name, []byte(arcMessage)):
			kind = arcMessage
		case bytes.EqualFold(f.Name, []byte(arcAuthRes)):
			kind = arcAuthRes
		default:
			continue
		}
		i, err := arcInstance(f.Raw, kind == arcAuthRes)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %v", kind, err)
		}
		all = append(all, found{i, kind, f.Raw})
		n = max(n, i)
	}
	if n == 0 {
		return nil, 0, nil
	}
	sets = make([]arcSet, n+1)
	for _, f := range all {
		s := &sets[f.instance]
		slot := map[string]*[]byte{arcSeal: &s.seal, arcMessage: &s.message, arcAuthRes: &s.authRes}[f.kind]
		if *slot != nil {
			return nil, n, fmt.Errorf("two %s fields with i=%d", f.kind, f.instance)
		}
		*slot = f.raw
	}
	for i := 1; i <= n; i++ {
		s := sets[i]
		if s.seal == nil || s.message == nil || s.authRes == nil {
			return nil, n, fmt.Errorf("ARC set i=%d is incomplete", i)
		}
	}
	return sets, n, nil
}

// arcInstance reads the i= tag of an ARC field, a number from 1 to 50
// (RFC 8617 §4.2.1): the first thing in an ARC-Authentication-Results
// (its value is "i=N;" and then an Authentication-Results payload), a
// tag like the others in a seal or message signature.
func arcInstance(raw []byte, first bool) (int, error) {
	var num string
	if first {
		_, value, _ := bytes.Cut(raw, []byte(":"))
		spec, _, _ := bytes.Cut(value, []byte(";"))
		name, v, ok := bytes.Cut(spec, []byte("="))
		if !ok || string(bytes.TrimSpace(name)) != "i" {
			return 0, errors.New("no i= tag first")
		}
		num = string(bytes.TrimSpace(v))
	} else {
		t, err := parseTagList(raw)
		if err != nil {
			return 0, err
		}
		v, ok := t["i"]
		if !ok {
			return 0, errors.New("no i= tag")
		}
		num = v
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 1 || i > maxARCInstances {
		return 0, fmt.Errorf("instance %q is not a number from 1 to %d", num, maxARCInstances)
	}
	return i, nil
}

// tagList is a parsed tag=value list (RFC 6376 §3.2): tag names as
// written, values with their whitespace removed.
type tagList map[string]string

// parseTagList parses the value of a signature field.
func parseTagList(raw []byte) (tagList, error) {
	_, value, ok := bytes.Cut(raw, []byte(":"))
	if !ok {
		return nil, errors.New("no colon")
	}
	t := tagList{}
	for _, spec := range bytes.Split(value, []byte(";")) {
		if len(bytes.TrimSpace(spec)) == 0 {
			continue // a trailing semicolon is allowed
		}
		name, v, ok := bytes.Cut(spec, []byte("="))
		if !ok {
			return nil, fmt.Errorf("tag %q without a value", bytes.TrimSpace(spec))
		}
		k := string(bytes.TrimSpace(name))
		if _, dup := t[k]; dup {
			return nil, fmt.Errorf("tag %s given twice", k)
		}
		t[k] = string(bytes.Join(bytes.Fields(v), nil))
	}
	return t, nil
}

// withoutSignature is field raw with the value of its b= tag removed,
// and its final line end: the form a signature field is hashed in (RFC
// 6376 §3.7).
func withoutSignature(raw []byte) []byte {
	colon := bytes.IndexByte(raw, ':')
	out := append([]byte(nil), raw[:colon+1]...)
	specs := bytes.Split(raw[colon+1:], []byte(";"))
	for i, spec := range specs {
		if i > 0 {
			out = append(out, ';')
		}
		if name, _, ok := bytes.Cut(spec, []byte("=")); ok && string(bytes.TrimSpace(name)) == "b" {
			spec = spec[:len(name)+1]
		}
		out = append(out, spec...)
	}
	return bytes.TrimRight(out, "\r\n")
}

// arcVerifier checks the signatures of one chain, fetching each
// sealer's key once.
type arcVerifier struct {
	ctx  context.Context
	r    *budgeted
	keys map[string]keyOrError
}

type keyOrError struct {
	key *rsa.PublicKey
	err error
}

// checkMessageSignature verifies an ARC-Message-Signature over the
// header fields it names and the body (RFC 8617 §4.1.2: a DKIM-Signature
// with an instance in place of v=).
func (v *arcVerifier) checkMessageSignature(fields []dkim.Field, body, raw []byte) error {
	t, err := parseTagList(raw)
	if err != nil {
		return err
	}
	for _, k := range []string{"a", "b", "bh", "d", "s", "h"} {
		if t[k] == "" {
			return fmt.Errorf("no %s= tag", k)
		}
	}
	if _, ok := t["l"]; ok {
		return errors.New("l= is not supported: the signature does not cover the whole body")
	}
	headerRelaxed, bodyRelaxed, err := canonicalization(t["c"])
	if err != nil {
		return err
	}
	bh := dkim.BodyHash(body, bodyRelaxed)
	if base64.StdEncoding.EncodeToString(bh[:]) != t["bh"] {
		return errors.New("body hash does not match: the body changed after this hop")
	}
	names := strings.Split(t["h"], ":")
	if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(strings.TrimSpace(n), arcSeal) }) {
		return errors.New("h= lists ARC-Seal (RFC 8617 §4.1.2)")
	}
	data := appendSignedFields(nil, fields, names, headerRelaxed)
	data = appendSignatureField(data, withoutSignature(raw), headerRelaxed)
	digest := sha256.Sum256(data)
	return v.checkSignature(t, digest[:])
}

// checkSeal verifies ARC-Seal i over the ARC sets 1 to i, each in the
// order AAR, AMS, AS, relaxed, the seal itself last without its b=
// value (RFC 8617 §5.1.1).
func (v *arcVerifier) checkSeal(sets []arcSet, i int, t tagList) error {
	for _, k := range []string{"a", "b", "d", "s"} {
		if t[k] == "" {
			return fmt.Errorf("no %s= tag", k)
		}
	}
	if _, ok := t["h"]; ok {
		return errors.New("h= is not allowed in an ARC-Seal")
	}
	digest := sha256.Sum256(sealData(sets[1:i], sets[i].authRes, sets[i].message, withoutSignature(sets[i].seal)))
	return v.checkSignature(t, digest[:])
}

// appendSignedFields appends the canonical form of the header fields an
// h= list names (RFC 6376 §5.4.2): for a name listed n times, its n
// bottom-most instances, bottom first; a name listed more often than it
// occurs adds nothing the extra times.
func appendSignedFields(dst []byte, fields []dkim.Field, names []string, relaxed bool) []byte {
	used := map[string]int{} // per lower-case name: instances already taken from the bottom
	for _, name := range names {
		name = strings.ToLower(strings.TrimSpace(name))
		skip := used[name]
		used[name]++
		for j := len(fields) - 1; j >= 0; j-- {
			if !strings.EqualFold(string(fields[j].Name), name) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			dst = dkim.AppendCanonicalField(dst, fields[j].Raw, relaxed)
			break
		}
	}
	return dst
}

// appendSignatureField appends a signature's own field, its b= value
// already removed, canonical and without its final CRLF: the last thing
// a signature covers (RFC 6376 §3.7).
func appendSignatureField(dst, f []byte, relaxed bool) []byte {
	return bytes.TrimSuffix(dkim.AppendCanonicalField(dst, f, relaxed), []byte("\r\n"))
}

// sealData is what an ARC-Seal signs (RFC 8617 §5.1.1): the sets before
// it, each as AAR, AMS and AS, relaxed; then its own AAR and AMS; then
// itself, sealField being the seal without its b= value.
func sealData(prior []arcSet, authRes, message, sealField []byte) []byte {
	var data []byte
	for _, s := range prior {
		for _, f := range [][]byte{s.authRes, s.message, s.seal} {
			data = dkim.AppendCanonicalField(data, f, true)
		}
	}
	data = dkim.AppendCanonicalField(data, authRes, true)
	data = dkim.AppendCanonicalField(data, message, true)
	return appendSignatureField(data, sealField, true)
}

// canonicalization reads a c= tag: header/body, simple by default.
func canonicalization(c string) (headerRelaxed, bodyRelaxed bool, err error) {
	if c == "" {
		return false, false, nil
	}
	head, body, _ := strings.Cut(strings.ToLower(c), "/")
	for _, p := range []struct {
		s string
		r *bool
	}{{head, &headerRelaxed}, {body, &bodyRelaxed}} {
		switch p.s {
		case "relaxed":
			*p.r = true
		case "simple", "":
		default:
			return false, false, fmt.Errorf("unknown canonicalization %q", c)
		}
	}
	return headerRelaxed, bodyRelaxed, nil
}

// checkSignature checks the b= of tags t over digest with the key of
// its d= and s=. RFC 8617 signs with DKIM's algorithms of its day,
// rsa-sha256 alone (§4.1.2, §4.1.3; dkimpy, the reference
// implementation, accepts no other); rsa-sha1 is not allowed.
func (v *arcVerifier) checkSignature(t tagList, digest []byte) error {
	if a := strings.ToLower(t["a"]); a != "rsa-sha256" {
		return fmt.Errorf("algorithm %q is not supported (ARC signs with rsa-sha256)", a)
	}
	sig, err := base64.StdEncoding.DecodeString(t["b"])
	if err != nil {
		return fmt.Errorf("b= is not base64: %v", err)
	}
	key, err := v.key(t["s"], t["d"])
	if err != nil {
		return err
	}
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest, sig) != nil {
		return errors.New("signature does not verify")
	}
	return nil
}

// key fetches and parses the RSA key record selector._domainkey.domain
// (RFC 6376 §3.6.1), once per chain.
func (v *arcVerifier) key(selector, domain string) (*rsa.PublicKey, error) {
	name := selector + "._domainkey." + domain
	if k, ok := v.keys[strings.ToLower(name)]; ok {
		return k.key, k.err
	}
	k, err := v.fetchKey(name)
	v.keys[strings.ToLower(name)] = keyOrError{k, err}
	return k, err
}

func (v *arcVerifier) fetchKey(name string) (*rsa.PublicKey, error) {
	txts, err := v.r.LookupTXT(v.ctx, name)
	if err != nil {
		return nil, fmt.Errorf("key %s: %v", name, err)
	}
	if len(txts) == 0 {
		return nil, fmt.Errorf("key %s: no TXT record", name)
	}
	t, err := parseTagList([]byte(":" + txts[0]))
	if err != nil {
		return nil, fmt.Errorf("key %s: %v", name, err)
	}
	if ver, ok := t["v"]; ok && ver != "DKIM1" {
		return nil, fmt.Errorf("key %s: v=%s", name, ver)
	}
	if k := strings.ToLower(t["k"]); k != "" && k != "rsa" {
		return nil, fmt.Errorf("key %s: k=%s, not an RSA key", name, k)
	}
	if t["p"] == "" {
		return nil, fmt.Errorf("key %s is revoked (empty p=)", name)
	}
	der, err := base64.StdEncoding.DecodeString(t["p"])
	if err != nil {
		return nil, fmt.Errorf("key %s: p= is not base64", name)
	}
	var rk *rsa.PublicKey
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, _ = pub.(*rsa.PublicKey)
	} else if pk, err := x509.ParsePKCS1PublicKey(der); err == nil {
		rk = pk
	}
	if rk == nil {
		return nil, fmt.Errorf("key %s: p= is not an RSA public key", name)
	}
	if rk.N.BitLen() < 1024 { // RFC 8301 §3.2
		return nil, fmt.Errorf("key %s: RSA key of %d bits, under 1024", name, rk.N.BitLen())
	}
	return rk, nil
}
