// Package hooks posts delivery-log events to webhooks: the sender's
// feedback loop over HTTP (docs/events.md).
//
// Each configured hook has a durable FIFO queue (Queue) in its own
// directory, spool.dir/hooks/NAME, and one sender goroutine that posts its
// events in batches as a JSON array, signed with HMAC-SHA256 (Sign).
//
// Invariants:
//   - Durable before acknowledged: Manager.Publish returns only after the
//     event is fsynced in the queue of every hook that wants it. The server
//     publishes from its delivery-log tap, which runs before the 250 of a
//     reception and before the spool records a delivery attempt, so an
//     acknowledged action always has its event on disk.
//   - At least once: an event leaves its queue only after the endpoint
//     answered 2xx to a POST that contained it. A crash (kill -9) at any
//     moment loses nothing fsynced; it may repeat the last batch, so a
//     receiver deduplicates by event_id.
//   - Bounded: a hook's queue is capped by maxQueued and maxQueuedBytes.
//     Events are never dropped for a full queue: while one is full,
//     Manager.Full reports it and reception refuses new mail with
//     451 4.3.0, so the queue grows past its cap only by the events of mail
//     already accepted.
//   - In order per hook: batches are posted one at a time, oldest first; a
//     failing endpoint is retried with jittered, capped exponential back-off
//     and holds back the batches behind it.
package hooks
