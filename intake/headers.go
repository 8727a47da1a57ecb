package intake

import (
	"fmt"
	"slices"
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

// TagsHeader carries the stage rules' tags in the stored message. One
// that arrived with the message is removed first, so a sender cannot
// forge it.
const TagsHeader = "X-Cuemta-Tags"

// tagsHeader adds the tags field (and the removal of any incoming one) to
// the rules' header changes.
func tagsHeader(m *msgheader.Message, tags []string, add []rules.Header, remove []string) ([]rules.Header, []string) {
	if len(tags) == 0 && m.Header.Get(TagsHeader) == "" {
		return add, remove
	}
	remove = append(slices.Clip(remove), TagsHeader)
	if len(tags) > 0 {
		add = append([]rules.Header{{Name: TagsHeader, Value: strings.Join(tags, ", ")}}, add...)
	}
	return add, remove
}
