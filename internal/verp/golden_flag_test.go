package verp

// The -update flag is defined in every test binary (see internal/golden).
import _ "github.com/cuemta/cuemta/internal/golden"
