package reception

// The -update flag is defined in every test binary, so that
// `go test ./... -update` can rewrite golden files anywhere.
import _ "github.com/cuemta/cuemta/internal/golden"
