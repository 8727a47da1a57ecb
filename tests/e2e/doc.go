// Package e2e runs the real cuemta binary as a subprocess on loopback:
// SMTP in, the spool across crashes, delivery to a fake ISP. Each test
// starts its own server with an inline config and its own spool.
package e2e
