// Package control is rotini's control socket: an HTTP+JSON API on a unix
// socket, the client the CLI verbs (reload, status, scale, health, stop)
// use to talk to it, and the API's types (api.go), which both sides share:
// the supervisor (package reload) reports its apps, reload events and
// results in them, through the Backend interface this package defines.
// It imports neither the supervisor nor the watcher.
//
// Invariant: no client can hurt the init. Every request is bounded — header
// size and read time, body size (no endpoint takes a body), write time per
// line, the number of connections at once, and the length of a reload-wait
// stream — and a panic in a handler is recovered and logged. A misbehaving
// client gets an error or a timeout; rotini, its apps and the other clients
// go on.
//
// Endpoints (each also without the /v1 prefix, so that
// `curl --unix-socket /run/rotini/rotini.sock http://rotini/status` works):
//
//	GET  /v1/status                              version, pid, start time, listeners, apps
//	POST /v1/reload?app=NAME&wait=1&timeout=60s  202 {"accepted":true}; with wait, NDJSON progress
//	POST /v1/scale?app=NAME&workers=N            200, or 400 {"error":…}
//	GET  /v1/health                              200 {"ok":true} or 503 {"ok":false,"reason":…}
//	POST /v1/stop                                202: a graceful stop, as TERM
//
// Every answer is JSON, errors included: {"error":"…"} with a 4xx or 5xx
// status.
package control
