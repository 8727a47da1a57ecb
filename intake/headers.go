package intake

import (
	"fmt"
	"strings"

	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/rules"
)

// rewriteHeader applies the message rules' header changes to the parsed
// message m: every field named in remove goes (case-insensitive, with its
// continuation lines), then the fields of add are put at the top, in
// their order. The other fields keep their bytes and order.
func rewriteHeader(m *msgheader.Message, add []rules.Header, remove []string) error {
	for _, r := range remove {
		m.Header.Del(r)
	}
	for i := len(add) - 1; i >= 0; i-- {
		h := add[i]
		if err := m.Header.Add(h.Name, sanitizeHeaderValue(h.Value)); err != nil {
			// The schema admits only field names, and the value is on
			// one line: a rule cannot get here.
			return fmt.Errorf("rule header %s: %w", h.Name, err)
		}
	}
	return nil
}

// sanitizeHeaderValue keeps a rule-supplied value on one header line, so
// a rule can never inject extra header fields.
func sanitizeHeaderValue(v string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
}
