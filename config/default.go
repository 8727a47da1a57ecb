package config

import _ "embed"

//go:embed default.cue
var defaultSource []byte

// DefaultName is how the embedded default config appears in messages.
const DefaultName = "default.cue"

// DefaultSource returns the embedded default configuration's CUE text.
func DefaultSource() []byte { return defaultSource }

// LoadDefault loads the embedded default configuration.
func LoadDefault() (*Config, error) { return LoadSource(DefaultName, defaultSource) }
