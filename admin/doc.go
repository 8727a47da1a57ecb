// Package admin is cuemta's HTTP admin API: message injection (the same
// request body as KumoMTA's /api/inject/v1), queue inspection and control,
// suspensions, configuration reload, status, health checks and Prometheus
// metrics.
//
// The engine implements Backend; this package owns HTTP: routing,
// authentication (a bearer token compared in constant time), request
// validation, size limits, timeouts and JSON errors. Every error is a 4xx or
// 5xx response with a body {"error": "...", "detail": ...}; a request
// refused by validation never reaches the Backend.
//
// With admin.token set, every request needs "Authorization: Bearer TOKEN"
// except GET /healthz and /readyz, which are always open (Kubernetes probes
// cannot send a token; they tell only up or ready, and /readyz gives its
// reason only to loopback or token holders), and GET /metrics when the
// listener is on loopback.
//
// The API is not drivable from a web page (csrf.go): a request with a
// non-loopback Origin is refused (403) with or without a token; without a
// token, POST, PUT, PATCH and DELETE need Content-Type: application/json
// (else 415) and a loopback Host header (else 403, against DNS rebinding).
//
// Endpoints:
//
//	POST   /api/inject/v1                     inject messages (KumoMTA-compatible)
//	GET    /api/v1/queue?by=site|pool|tenant  queued messages by group
//	GET    /api/v1/messages/{id}              one message
//	POST   /api/v1/messages/{id}/retry        make it due now
//	POST   /api/v1/messages/{id}/bounce       bounce it: {"reason": "..."}
//	DELETE /api/v1/messages/{id}              delete it without a bounce
//	GET    /api/v1/suspensions                suspensions in force
//	POST   /api/v1/suspensions                suspend: {"scope","key","duration","reason"}
//	DELETE /api/v1/suspensions/{scope}/{key}  resume
//	POST   /api/v1/reload                     reload the configuration
//	GET    /api/v1/status                     generation, uptime, queue, listeners
//	GET    /healthz                           200 while the process serves
//	GET    /readyz                            200 when ready to accept mail, else 503 and why
//	GET    /metrics                           Prometheus metrics
package admin
