// Package isp embeds cuemta's built-in ISP delivery profiles: the CUE
// package cuemta.dev/isp, with one file per mailbox provider (google, yahoo,
// microsoft, office365, apple, comcast, gmx, orange, yandex, mailru, zoho)
// plus the `default` profile that applies to every destination, and the
// policy tests that make each shipped response rule fire on the provider's
// published reply.
//
// The config loader overlays FS at <dir>/cue.mod/pkg/cuemta.dev/isp/ so that a
// user configuration can write
//
//	import "cuemta.dev/isp"
//	profiles: isp.profiles
//	profiles: google: maxConnections: 5
//
// Invariants kept by the files (and checked by their tests): every setting is
// a CUE default, so users refine by unification; rule names are unique and
// prefixed with their profile; no two profiles claim the same recipient domain
// or MX pattern; `default` has no match; every rule has a test that fires it;
// a block or reputation rule on the sending IP suspends it at the provider
// and never bounces (profiles_test.go).
package isp

import "embed"

// ImportPath is the CUE import path of the embedded package.
const ImportPath = "cuemta.dev/isp"

// FS holds the package's .cue files.
//
//go:embed *.cue
var FS embed.FS
