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
