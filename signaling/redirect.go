package signaling

import (
	"context"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/signaling/wire"
	"github.com/meshmeet/meshmeet/web"
)

// Redirects (issue 12 item 3). A redirect sends a client to another node
// of the cluster: {type:"redirect", url} with the node's public base URL,
// after which the client closes its socket and joins there. Placement
// (place.go) sends one instead of a welcome; a draining node sends one at
// any time (drain.go). A client must never be sent to a host that is not
// one of this cluster's nodes: every URL sent is checked against the
// public URLs the cluster gossips (Config.Bridges) and their form.

// sendRedirect answers c's join with a redirect to target and closes the
// socket. target must have passed memberURL.
func (s *Server) sendRedirect(ctx context.Context, c *conn, target string) {
	writeNow(ctx, c.ws, &wire.Message{Type: wire.TypeRedirect, URL: target})
	c.close(websocket.StatusNormalClosure, "redirected")
}

// memberURL reports whether u is the public URL of a node this node knows
// in the cluster (from gossip), in a form a client may be sent to:
// validRedirectURL.
func (s *Server) memberURL(u string) bool {
	if !validRedirectURL(u) || s.cfg.Bridges == nil {
		return false
	}
	for _, b := range s.cfg.Bridges() {
		if b.PublicURL == u {
			return true
		}
	}
	return false
}

// validRedirectURL: an absolute http or https URL with a host, no user
// info, query or fragment, at most wire.MaxURLBytes of printable ASCII.
func validRedirectURL(s string) bool {
	if s == "" || len(s) > wire.MaxURLBytes || !probePrintable(s) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	return (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.User == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}

// clusterOrigins are the host patterns of the cluster's public URLs and
// Config.ClusterOrigins: a page served by one node (or under the
// latency-routed name) opens its WebSocket to another after a redirect,
// and the WebSocket upgrade checks the page's origin against them
// (besides the node's own host). A page of any other site still cannot
// open a session.
func (s *Server) clusterOrigins() []string {
	if s.cfg.Bridges == nil {
		return nil
	}
	bs := s.cfg.Bridges()
	out := make([]string, 0, len(bs)+len(s.cfg.ClusterOrigins))
	out = append(out, s.cfg.ClusterOrigins...)
	for _, b := range bs {
		if !validRedirectURL(b.PublicURL) {
			continue
		}
		if u, err := url.Parse(b.PublicURL); err == nil {
			out = append(out, u.Host)
		}
	}
	return out
}

// pageCSP is the web client's Content-Security-Policy for a page served
// here: web.ContentSecurityPolicy with connect-src widened from 'self' to
// the cluster's public URLs (fetch of their /probe, and their WebSocket
// after a redirect), http(s) and ws(s) alike. Only URLs whose host is
// made of host characters are listed, so gossip cannot add a directive.
func (s *Server) pageCSP() string {
	if s.cfg.Bridges == nil {
		return web.ContentSecurityPolicy
	}
	srcs := []string{"'self'"}
	seen := map[string]bool{}
	for _, b := range s.cfg.Bridges() {
		if !validRedirectURL(b.PublicURL) {
			continue
		}
		u, err := url.Parse(b.PublicURL)
		if err != nil || !cspHost(u.Host) || seen[u.Host+u.Scheme] {
			continue
		}
		seen[u.Host+u.Scheme] = true
		ws := "ws"
		if u.Scheme == "https" {
			ws = "wss"
		}
		srcs = append(srcs, u.Scheme+"://"+u.Host, ws+"://"+u.Host)
	}
	return strings.Replace(web.ContentSecurityPolicy, "connect-src 'self'", "connect-src "+strings.Join(srcs, " "), 1)
}

// cspHost reports whether h (host[:port]) has only letters, digits, '.',
// '-', ':', '[' and ']'.
func cspHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
