// Package mtasts finds the MTA-STS policy of a recipient domain (RFC 8461):
// the _mta-sts TXT record says a policy exists and names its version (id),
// the policy itself is fetched over HTTPS from mta-sts.<domain>, parsed,
// and kept for its max_age.
//
// Invariants:
//   - A policy once fetched stays in force until its max_age has passed,
//     whatever DNS says meanwhile: a removed TXT record, a failed
//     refresh or an unreachable policy host never drop it early (RFC 8461
//     §5.1, §10.2: an attacker who controls DNS later cannot downgrade
//     it). Only a newer policy, fetched and valid, replaces it.
//   - The policies in force are persisted (a small JSON file replaced
//     atomically), so a restart does not reopen that window.
//   - One fetch per domain at a time (single flight); the cache holds at
//     most MaxEntries domains, evicting the least recently used.
//   - Nothing here decides delivery: Policy.MatchesMX and Policy.Mode are
//     what the caller enforces.
package mtasts
