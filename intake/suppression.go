package intake

import (
	"errors"

	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
)

// Suppressor is the suppression list as intake sees it: once the rules
// have named the message's tenant, both that tenant's entries and the
// ones for every tenant apply.
type Suppressor interface {
	Suppressed(tenant, addr string) bool
}

// SuppressedReply refuses a recipient (or a message left with none) on
// the suppression list. RFC 3463 §3.8: X.7.1 delivery not authorized,
// message refused.
func SuppressedReply() *reception.Reply {
	return &reception.Reply{Code: 550, Enhanced: "5.7.1", Text: "Recipient suppressed",
		Cause: errors.New("every recipient is on the suppression list")}
}

// DropSuppressed removes from env the recipients the list suppresses for
// env.Tenant and returns them. When none is left it returns the 550 5.7.1
// reply that refuses the message; env is then unchanged. A nil list drops
// nothing.
func DropSuppressed(list Suppressor, env *queue.Envelope) (dropped []string, err error) {
	if list == nil {
		return nil, nil
	}
	kept := make([]queue.Recipient, 0, len(env.Recipients))
	for _, r := range env.Recipients {
		if list.Suppressed(env.Tenant, r.Addr) {
			dropped = append(dropped, r.Addr)
			continue
		}
		kept = append(kept, r)
	}
	if len(dropped) == 0 {
		return nil, nil
	}
	if len(kept) == 0 {
		return dropped, SuppressedReply()
	}
	env.Recipients = kept
	return dropped, nil
}
