// Package sim is a fake mail provider for tests and for `cuemta sim`: SMTP
// servers on loopback addresses that behave like an ISP's MX hosts, and an
// in-process DNS server answering for their domains.
//
// Each site (a provider) has domains and MX hosts; every MX host listens
// on its own 127.0.0.0/8 address at one shared port, so an MTA that looks
// up MX records in the sim's DNS and delivers to that port reaches the
// right site. Sites can cap concurrent connections, rate-limit messages
// per client address, greylist, refuse unknown users, answer slowly or
// force a reply at any stage. Everything that happens is recorded (Stats,
// Messages) so tests can check an MTA's behaviour: that it never opened
// more connections than a site allows, that it backed off when told to.
//
// Time-based behaviour (greylisting, rate windows, message timestamps)
// follows an injected clock; only Latency is real time.
package sim
