package inauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cuemta/cuemta/dkim"
)

// ErrChainFull is Seal's answer for a chain that already has the most
// sets RFC 8617 allows: the message goes on unsealed.
var ErrChainFull = errors.New("ARC chain already has 50 sets")

// Seal returns the ARC set (RFC 8617 §5.1) with which this host vouches
// for its verification of msg, to put on top of it: ARC-Seal,
// ARC-Message-Signature and ARC-Authentication-Results, each ending in
// CRLF. msg is the message as it will be relayed, this host's
// Authentication-Results included; r must hold the validation of the
// chain that came with it (Checks.ARC), which becomes the seal's cv. The
// key signs rsa-sha256, the only algorithm ARC defines; its header list,
// less Authentication-Results and the ARC fields, is what the message
// signature covers. A chain that failed is sealed with cv=fail over this
// set alone (§5.1.2), so that the next hop sees the break.
func (r *Results) Seal(msg []byte, authservID string, key *dkim.Key, now time.Time) ([]byte, error) {
	signer, ok := key.Signer().(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ARC seal: dkim key %q is not RSA (ARC signs with rsa-sha256)", key.Name)
	}
	if !r.Checks.ARC {
		return nil, errors.New("ARC seal: the incoming chain was not validated")
	}
	fields, bodyStart := dkim.HeaderFields(msg)
	sets, n, err := collectARCSets(fields)
	cv := r.ARC.Result
	switch {
	case err != nil || cv == "":
		cv = ResultFail
	case n == 0:
		cv = ResultNone // a rule removed the chain that came: this set starts a new one
	}
	if n >= maxARCInstances {
		return nil, ErrChainFull
	}
	i := n + 1
	t := strconv.FormatInt(now.Unix(), 10)
	sign := func(data []byte) (string, error) {
		sum := sha256.Sum256(data)
		sig, err := rsa.SignPKCS1v15(rand.Reader, signer, crypto.SHA256, sum[:])
		if err != nil {
			return "", fmt.Errorf("ARC seal: %w", err)
		}
		return foldBase64(base64.StdEncoding.EncodeToString(sig)), nil
	}

	// §4.1.1: the results this host wrote, under its instance.
	ar := string(r.Field(authservID))
	aar := "ARC-Authentication-Results: i=" + strconv.Itoa(i) + "; " + strings.TrimPrefix(ar, HeaderName+": ")

	// §4.1.2: a DKIM signature of the message as it leaves.
	var names []string
	for _, h := range key.HeaderKeys {
		switch strings.ToLower(h) {
		case "authentication-results", "arc-seal", "arc-message-signature", "arc-authentication-results", "dkim-signature":
			continue // §4.1.2 and §5.1.1: not ours to sign
		}
		if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, h) }) {
			names = append(names, strings.ToLower(h))
		}
	}
	bh := dkim.BodyHash(msg[bodyStart:], true)
	ams := "ARC-Message-Signature: i=" + strconv.Itoa(i) + "; a=rsa-sha256; c=relaxed/relaxed;\r\n" +
		"\td=" + key.Domain + "; s=" + key.Selector + "; t=" + t + ";\r\n" +
		"\th=" + strings.Join(names, ":") + ";\r\n" +
		"\tbh=" + base64.StdEncoding.EncodeToString(bh[:]) + ";\r\n\tb="
	data := appendSignatureField(appendSignedFields(nil, fields, names, true), []byte(ams), true)
	b, err := sign(data)
	if err != nil {
		return nil, err
	}
	ams += b + "\r\n"

	// §4.1.3 and §5.1.1: the seal over every set, or over this one alone
	// when the chain failed.
	as := "ARC-Seal: i=" + strconv.Itoa(i) + "; a=rsa-sha256; t=" + t + "; cv=" + cv + ";\r\n" +
		"\td=" + key.Domain + "; s=" + key.Selector + ";\r\n\tb="
	var prior []arcSet
	if cv != ResultFail && n > 0 {
		prior = sets[1:i]
	}
	data = sealData(prior, []byte(aar), []byte(ams), []byte(as))
	if b, err = sign(data); err != nil {
		return nil, err
	}
	as += b + "\r\n"
	return []byte(as + ams + aar), nil
}

// foldBase64 breaks a signature into lines of 72 characters, each after a
// folding CRLF and tab, so no header line passes 78 (RFC 5322 §2.1.1).
func foldBase64(s string) string {
	var b strings.Builder
	for len(s) > 72 {
		b.WriteString(s[:72] + "\r\n\t")
		s = s[72:]
	}
	b.WriteString(s)
	return b.String()
}
