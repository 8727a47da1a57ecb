// Package schema holds the CUE definitions that type a cuemta configuration.
// They are embedded in the binary; the config loader overlays them at
// cue.mod/pkg/cuemta.dev/schema so that errors point at stable paths and
// user files may import them.
package schema

import "embed"

// ImportPath is the CUE import path of the embedded schema package.
const ImportPath = "cuemta.dev/schema"

// FS holds the schema's .cue files.
//
//go:embed *.cue
var FS embed.FS
