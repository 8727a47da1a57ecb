package reception

// Discarded is the error a Sink returns for a message it takes from the
// client and drops on purpose: a content filter (milter) asked for it.
// The client hears 250, as from Sendmail and Postfix for a milter's
// discard, but never "queued as": that always means stored. The Sink
// logs and counts the discard itself; the Reason is logged here too.
type Discarded struct {
	// By names who asked (a milter's name).
	By     string
	Reason string
}

func (d *Discarded) Error() string { return "message discarded by " + d.By + ": " + d.Reason }

// errDiscardedReply is the reply to a discarded message. RFC 5321
// §4.2.2 250: the requested action was completed (the message was taken
// from the client); RFC 3463 X.0.0.
var errDiscardedReply = newReply(250, "2.0.0", "Ok: message accepted and discarded by a content filter, not queued")
