package deliverylog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encode appends ev as one JSON line to buf. Encoding happens outside the
// writer's lock so that concurrent loggers only serialise on the copy.
func encode(buf *bytes.Buffer, ev *Event) error {
	ev.Time = ev.Time.UTC()
	enc := json.NewEncoder(buf)
	// Replies and addresses are full of < and >; keep them readable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil { // Encode ends the line with \n
		return fmt.Errorf("deliverylog: encode %s event: %w", ev.Type, err)
	}
	return nil
}
