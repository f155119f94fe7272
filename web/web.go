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

import "embed"

// Assets is the web client. Its root holds index.html, the JavaScript
// modules (*.js) and the stylesheet (*.css).
//
//go:embed index.html *.js *.css
var Assets embed.FS
