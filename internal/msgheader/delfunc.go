package msgheader

import "strings"

// DelFunc deletes every field called name for whose value (unfolded,
// without surrounding white space) match reports true, and returns how
// many it deleted. The other fields keep their bytes and order.
func (h *Header) DelFunc(name string, match func(value string) bool) int {
	n := 0
	fs := h.h.Fields()
	for fs.Next() {
		if strings.EqualFold(fs.Key(), name) && match(fs.Value()) {
			fs.Del()
			n++
		}
	}
	return n
}
