// Package ispprofiles embeds the built-in ISP delivery profiles, a CUE
// package that user configs import as "cuemta.dev/isp".
package ispprofiles

import "embed"

// ImportPath is the CUE import path of the built-in profiles.
const ImportPath = "cuemta.dev/isp"

// FS holds the package's .cue files.
//
//go:embed *.cue
var FS embed.FS
