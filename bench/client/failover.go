package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Failover (issue 12 item 5). With Options.Failover, a client whose socket
// breaks without a leave or a fatal error (its node was killed, the
// machine is gone, the network changed) tries to resume at once: on the
// same node first, where a welcome with resumed keeps its media, then on
// each alternate node, where its resume secret makes it the same
// participant again with new PeerConnections that publish its tracks. It
// keeps trying for failoverWindow. A sub PeerConnection whose ICE is
// disconnected (about 5 s without an answer) closes the socket, so a node
// that vanished without a TCP reset is noticed too.

const (
	// failoverWindow is how long a client tries to resume somewhere; the
	// server keeps a dropped participant for 20 s.
	failoverWindow = 20 * time.Second
	// failoverDial bounds one attempt on one node.
	failoverDial = 3 * time.Second
	// maxAlternates bounds the alternates kept from GET /alternates.
	maxAlternates = 16
)

// failover resumes the session after its socket broke. It reports whether
// the client goes on (on readLoop, with the new socket).
func (c *Client) failover() bool {
	if !c.opts.Failover || c.closing.Load() || c.fatal.Load() {
		return false
	}
	start := time.Now()
	targets := []string{c.Node()}
	for _, a := range c.alternates() {
		if strings.TrimSuffix(a, "/") != strings.TrimSuffix(targets[0], "/") {
			targets = append(targets, a)
		}
	}
	resume := &wire.Resume{Participant: c.partID, Secret: c.secret}
	for attempt := 0; time.Since(start) < failoverWindow; attempt++ {
		for _, t := range targets {
			if c.closing.Load() {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), failoverDial)
			ws, m, base, err := c.connect(ctx, t, resume)
			cancel()
			if err != nil {
				continue
			}
			if m.Resumed {
				// The node still holds us: the media never stopped.
				c.mu.Lock()
				old := c.ws
				c.ws, c.base = ws, base
				c.mu.Unlock()
				old.CloseNow()
				select {
				case c.events <- m:
				default:
				}
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := c.adopt(ctx, ws, m, base)
				cancel()
				if err != nil {
					ws.CloseNow()
					continue
				}
			}
			if c.opts.OnFailover != nil {
				c.opts.OnFailover(base)
			}
			return true
		}
		time.Sleep(min(100*time.Millisecond<<attempt, 2*time.Second))
	}
	return false
}

// alternates returns the failover targets: Options.Alternates, or what
// GET /alternates answered at join.
func (c *Client) alternates() []string {
	if c.opts.Alternates != nil {
		return c.opts.Alternates
	}
	c.altMu.Lock()
	defer c.altMu.Unlock()
	return c.alts
}

// learnAlternates asks the node at base for the other nodes of its region
// (GET /alternates), unless Options.Alternates lists them. Best effort.
func (c *Client) learnAlternates(ctx context.Context, base string) {
	if c.opts.Alternates != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/alternates", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	var body struct {
		URLs []string `json:"urls"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<10)).Decode(&body); err != nil {
		return
	}
	var out []string
	for _, u := range body.URLs {
		if ValidRedirect(u) == nil && len(out) < maxAlternates {
			out = append(out, u)
		}
	}
	c.altMu.Lock()
	c.alts = out
	c.altMu.Unlock()
}

// watchICE closes the socket when pc's connection fails, so that failover
// starts even when the node vanished without closing the socket.
func (c *Client) watchICE(pc *webrtc.PeerConnection) {
	if !c.opts.Failover {
		return
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		// Disconnected comes after about 5 s without an answer to ICE
		// checks (failed only after 25 s): long enough to be more than a
		// hiccup. A live node resumes the socket with the media kept.
		if (s != webrtc.PeerConnectionStateDisconnected && s != webrtc.PeerConnectionStateFailed) || c.closing.Load() {
			return
		}
		c.mu.Lock()
		current := c.sub == pc
		ws := c.ws
		c.mu.Unlock()
		if current && ws != nil {
			ws.Close(websocket.StatusGoingAway, "media failed")
		}
	})
}
