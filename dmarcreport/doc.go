// Package dmarcreport counts the DMARC evaluations of received mail per
// policy domain and sends them as aggregate reports (RFC 7489 §7.2,
// XML per Appendix C) to the rua of the domain's DMARC record.
//
// Reception records a Result for every message whose From: domain has a
// DMARC record (Store.Record, which never blocks on I/O); the Store adds
// it to its domain's window of the current UTC day; the Reporter mails
// each closed window's report, gzipped, to the mailto: rua of the record
// as last seen in that window.
//
// Invariants:
//
//   - Memory is bounded whatever senders do: at most MaxDomains open
//     windows, MaxRecords rows per window, MaxRows rows in all windows,
//     3×MaxDomains closed windows and MaxRua destinations per report. What a cap turns away
//     is counted (Store.Dropped), never silently lost.
//   - A report goes to a destination at most once: the destinations that
//     took a window's report are saved with it, so a retry after a
//     failure goes only to the others, also across a restart.
//   - A report leaves only for a destination the policy domain vouches
//     for: one in its own organisational domain, or one whose domain
//     publishes the §7.1 verification record. Nothing is sent to a URI
//     that is not mailto:, or to one whose size limit the mail exceeds.
//   - Counting never stops mail: the state file is replaced atomically
//     (internal/atomicfile), and a state file that cannot be read is
//     renamed aside and counting starts afresh.
//   - Report mail is not counted: its envelopes carry ReportListener,
//     and the caller records no result for such a message, so reports
//     about reports cannot loop.
package dmarcreport
