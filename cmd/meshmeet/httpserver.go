package main

import (
	"log/slog"
	"net/http"
	"time"
)

// HTTP server limits of a node's client-facing listener (docs/operations.md).
// WebSockets outlive ReadTimeout and WriteTimeout: net/http clears the
// deadlines of a hijacked connection, and signaling bounds each WebSocket
// read and write itself.
const (
	// httpReadHeaderTimeout bounds the request line and headers, so a
	// client dripping a header cannot hold a connection.
	httpReadHeaderTimeout = 10 * time.Second
	// httpReadTimeout and httpWriteTimeout bound one whole plain request
	// (pages, assets, words, health, admin): all of them are small.
	httpReadTimeout  = 30 * time.Second
	httpWriteTimeout = 30 * time.Second
	// httpIdleTimeout closes a keep-alive connection that carries no
	// request for this long.
	httpIdleTimeout = 60 * time.Second
	// httpMaxHeaderBytes bounds the request line and headers (net/http's
	// default is 1 MiB): a browser's upgrade request is about 1 KiB and a
	// room name at most 512 bytes.
	httpMaxHeaderBytes = 32 << 10
)

// newHTTPServer returns the http.Server of a node's HTTP listener. Its
// errors (TLS handshakes, bad requests) are logged at Debug: they are the
// clients' problems, and they may name client addresses.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
