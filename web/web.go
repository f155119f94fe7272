// Package web holds meshmeet's embedded web client: plain HTML, CSS and
// JavaScript modules with no build step.
//
// Assets has index.html at its root and the modules and stylesheet beside
// it. The signaling server serves index.html for / and /<room>, and every
// file under /static/<file>; index.html therefore references its modules as
// /static/app.js and so on.
//
// The client never talks to any host but the one that served it: no CDN, no
// web fonts, no analytics, no STUN or TURN server other than the ICE servers
// the signaling server hands out at join. What the server must not see (the
// display name given in a link and the E2EE passphrase) travels in the URL
// fragment, which browsers do not send in HTTP requests.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// Assets is the web client. Its root holds index.html, the cluster page
// cluster.html, the JavaScript modules (*.js) and the stylesheets (*.css).
//
//go:embed index.html cluster.html *.js *.css
var Assets embed.FS

// ContentSecurityPolicy allows the page only its own origin: its modules and
// stylesheet, its WebSocket, camera frames and media as blob URLs, and no
// inline script, plugin, <base> or framing by another site.
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
	"style-src 'self'; script-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// SetSecurityHeaders sets the headers every response of the web client
// carries, pages and assets alike: the Content-Security-Policy, a
// Permissions-Policy that gives camera, microphone and screen capture to
// this origin only, no Referer (room names are in page URLs) and no MIME
// sniffing.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// ServeClusterPage serves cluster.html, the operators' cluster page, for
// /cluster. The page itself is public; what it shows comes from
// /admin/status, which asks for the admin token. It connects to its own
// origin only, so it carries ContentSecurityPolicy unchanged.
func ServeClusterPage(w http.ResponseWriter, r *http.Request) {
	page, err := fs.ReadFile(Assets, "cluster.html")
	if err != nil {
		http.Error(w, "cluster page missing", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	SetSecurityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.Write(page)
}
