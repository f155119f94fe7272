package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
)

// Draining a node (issue 12 item 4; docs/operations.md "Draining a node").
//
// SIGTERM, or `meshmeet cluster drain NODE` (POST /admin/drain on the
// node), starts it: the node takes no new participant and mints no TURN
// credentials, /readyz says not ready, the draining flag is gossiped so no
// node places joins here, and signaling moves the participants to other
// bridges of the region a few at a time (signaling.Server.Drain), each only
// to a bridge that is not full, of the regions its meeting is pinned to if
// any; a client failing over to the node meanwhile is sent on the same
// way. When none
// is left, or after --drain-timeout, the node stops as on SIGINT: it
// leaves the cluster and serve returns nil (exit status 0). A second
// SIGTERM or a SIGINT during the drain stops it at once.

const (
	// drainBatch participants are moved at once, every drainInterval
	// (±50% jitter): 50 participants move in about 10 s.
	drainBatch    = 5
	drainInterval = time.Second
	// defaultDrainTimeout is --drain-timeout's default.
	defaultDrainTimeout = 60 * time.Second
)

// termHandler, when set, is called for each SIGTERM instead of stopping the
// command: serve drains.
var termHandler atomic.Pointer[func()]

// withTermSignal returns ctx that SIGTERM cancels, unless a command set
// termHandler, which then gets the signal.
func withTermSignal(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGTERM)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if h := termHandler.Load(); h != nil {
					(*h)()
					continue
				}
				cancel()
			}
		}
	}()
	return ctx, cancel
}

// drainMembers is what the drain needs of the control plane.
type drainMembers interface {
	Members() []mesh.Member
	SetDraining(bool)
}

// drainer drains this node once asked.
type drainer struct {
	sig     *signaling.Server
	mesh    drainMembers // nil: no cluster
	turn    *turnNode
	self    string
	region  string
	timeout time.Duration
	stop    context.CancelFunc // stops the node
	log     *slog.Logger

	started atomic.Bool
	// mu guards sent: participants sent to each node by this drain, added
	// to the node's gossiped count so that a batch does not pile onto one
	// node before its next load report.
	mu   sync.Mutex
	sent map[string]int
}

// request starts the drain, or, when it runs already, stops the node at
// once (a second signal).
func (d *drainer) request(ctx context.Context, why string) {
	if d.started.Swap(true) {
		d.log.Warn("drain: stopping at once", "reason", why)
		d.stop()
		return
	}
	d.log.Info("drain: started", "reason", why, "timeout", d.timeout.String())
	go d.run(ctx)
}

// begin starts the drain if it is not running (the admin API: asking
// twice does not stop the node). It reports whether it started now.
func (d *drainer) begin(ctx context.Context) bool {
	if d.started.Swap(true) {
		return false
	}
	d.log.Info("drain: started", "reason", "admin", "timeout", d.timeout.String())
	go d.run(ctx)
	return true
}

func (d *drainer) run(ctx context.Context) {
	start := time.Now()
	d.turn.draining.Store(true)
	d.sig.StartDrain()
	if d.mesh != nil {
		d.mesh.SetDraining(true)
	}
	if _, ok := d.pick(nil, false); !ok { // (full nodes count: they may free up)
		// Alone, or every other node drains too: nobody to move anyone
		// to, so stop now (participants are told the node shuts down).
		d.log.Info("drain: no other node to move participants to: stopping now", "participants", d.sig.Participants())
		d.stop()
		return
	}
	dctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	err := d.sig.Drain(dctx, signaling.DrainOptions{Target: d.target, Batch: drainBatch, Interval: drainInterval})
	switch {
	case err == nil:
		d.log.Info("drain: done, leaving the cluster", "moved", d.sig.Redirected(), "took", time.Since(start).Round(time.Millisecond).String())
	case errors.Is(err, context.DeadlineExceeded):
		d.log.Warn("drain: --drain-timeout reached, leaving the cluster", "moved", d.sig.Redirected(), "left_behind", d.sig.Participants())
	default:
		return // the node stops anyway
	}
	d.stop()
}

// target picks the node a participant moves to: a live, not draining
// member with a signaling URL in one of the regions of pin (any region
// when pin is empty; see signaling.DrainOptions.Target) that is not full,
// in this node's region when it has one (else in any region allowed), the
// least loaded counting what this drain sent it. None: the participant
// stays for now.
func (d *drainer) target(pin []string) (string, bool) { return d.pick(pin, true) }

// pick finds the target in pin's regions; count records a participant
// sent to it and skips full members (full). Without count (is there
// anyone to move to at all?) a full member counts too: it may free up
// before the drain ends.
func (d *drainer) pick(pin []string, count bool) (string, bool) {
	if d.mesh == nil {
		return "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	best, bestLoad, bestSame := mesh.Member{}, 0.0, false
	found := false
	for _, m := range d.mesh.Members() {
		if m.Name == d.self || m.State != mesh.MemberAlive || m.Meta.Draining || m.Meta.Leaving || m.Meta.SignalingURL == "" {
			continue
		}
		if len(pin) > 0 && !slices.Contains(pin, m.Meta.Region) {
			continue // it would refuse the participant (pinned meeting)
		}
		if count && full(m.Meta, d.sent[m.Name]) {
			continue // it would refuse the participant as full
		}
		same := m.Meta.Region == d.region
		load := float64(m.Meta.Participants + d.sent[m.Name])
		if m.Meta.Capacity > 0 {
			load /= float64(m.Meta.Capacity)
		}
		if !found || (same && !bestSame) || (same == bestSame && load < bestLoad) {
			best, bestLoad, bestSame, found = m, load, same, true
		}
	}
	if !found {
		return "", false
	}
	if !count {
		return publicURL(best.Meta), true
	}
	if d.sent == nil {
		d.sent = map[string]int{}
	}
	d.sent[best.Name]++
	return publicURL(best.Meta), true
}

// full reports whether a member holding m.Participants, and sent more
// since its last report, is at or over its capacity (--max-participants):
// placement's stress on participants alone (placement.Stress), since a
// node refuses a participant as full on that count only, not on its CPU
// or bitrate. No capacity: never full.
func full(m mesh.NodeMeta, sent int) bool {
	return m.Capacity > 0 && m.Participants+sent >= m.Capacity
}

// alternates returns signaling's Config.Alternates: the URLs of the live,
// not draining members other than self, those of region first.
func alternates(self, region string, members func() []mesh.Member) func() []string {
	return func() []string {
		var same, other []string
		for _, m := range members() {
			if m.Name == self || m.State != mesh.MemberAlive || m.Meta.Draining || m.Meta.Leaving || m.Meta.SignalingURL == "" {
				continue
			}
			if m.Meta.Region == region {
				same = append(same, publicURL(m.Meta))
			} else {
				other = append(other, publicURL(m.Meta))
			}
		}
		return append(same, other...)
	}
}

// publicURL is the base URL clients reach a member at.
func publicURL(m mesh.NodeMeta) string {
	return m.SignalingURL
}

// drainPath is the admin API path that starts a drain of the node that
// receives it (query: node=NAME, which must be that node's name).
const drainPath = "/admin/drain"

// withDrainAdmin serves POST /admin/drain?node=NAME to requests bearing
// the admin token, and passes every other request to next (the mesh's
// admin API; nil: 404).
func withDrainAdmin(next http.Handler, token []byte, self string, d *atomic.Pointer[drainer], ctx context.Context) http.Handler {
	want := []byte(mesh.AdminAuthorization(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != drainPath {
			if next == nil {
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if len(token) < 16 || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Query().Get("node") != self {
			http.Error(w, "this is not the node named", http.StatusConflict)
			return
		}
		dr := d.Load()
		if dr == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if dr.begin(ctx) {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintln(w, "draining")
			return
		}
		fmt.Fprintln(w, "already draining")
	})
}

// clusterDrainCommand is `meshmeet cluster drain NODE`.
func clusterDrainCommand() *cli.Command {
	var (
		statusURL  string
		secretFile string
		wait       bool
	)
	return &cli.Command{
		Name:      "drain",
		Usage:     "move a node's participants to other nodes of its region, then stop it (exit 0)",
		ArgsUsage: "NODE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:7880", EnvVars: envVar("url"), Destination: &statusURL,
				Usage: "HTTP address of any node"},
			&cli.StringFlag{Name: "cluster-secret-file", EnvVars: envVar("cluster-secret-file"), Destination: &secretFile,
				Usage: "file holding the cluster secret (or the secret itself in " + envClusterSecret + ")"},
			&cli.BoolFlag{Name: "wait", Destination: &wait, Usage: "wait until the node has left the cluster"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("cluster drain needs one NODE name (see meshmeet cluster status)")
			}
			node := c.Args().First()
			token, err := adminToken("drain", secretFile)
			if err != nil {
				return err
			}
			base, err := nodeURL(c.Context, statusURL, token, node)
			if err != nil {
				return err
			}
			if err := postDrain(c.Context, base, token, node); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s is draining\n", node)
			if !wait {
				return nil
			}
			return waitGone(c.Context, c.App.Writer, statusURL, base, token, node)
		},
	}
}

// nodeURL finds node's signaling URL in the cluster status of the node at
// base.
func nodeURL(ctx context.Context, base string, token []byte, node string) (string, error) {
	st, _, err := fetchStatus(ctx, base, token)
	if err != nil {
		return "", err
	}
	for _, m := range st.Members {
		if m.Name == node {
			if m.State != string(mesh.MemberAlive) {
				return "", fmt.Errorf("cluster drain: %s is %s", node, m.State)
			}
			if st.Node == node {
				return base, nil // the node asked is the one to drain
			}
			if m.SignalingURL == "" {
				return "", fmt.Errorf("cluster drain: %s gossips no URL", node)
			}
			return m.SignalingURL, nil
		}
	}
	return "", fmt.Errorf("cluster drain: no node %q in the cluster", node)
}

// postDrain asks the node at base to drain.
func postDrain(ctx context.Context, base string, token []byte, node string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("cluster drain: bad node URL")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + drainPath
	u.RawQuery = url.Values{"node": {node}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", mesh.AdminAuthorization(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cluster drain: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted:
		return nil
	case http.StatusUnauthorized:
		return errors.New("cluster drain: refused: the node has another cluster secret")
	case http.StatusConflict:
		return errors.New("cluster drain: the node at that URL is not " + node)
	}
	return fmt.Errorf("cluster drain: HTTP %d", resp.StatusCode)
}

// waitGone polls the cluster status until node is no longer alive. It
// asks the node at statusURL unless that is the node drained, then any
// other live member.
func waitGone(ctx context.Context, w io.Writer, statusURL, drained string, token []byte, node string) error {
	ask := statusURL
	if strings.TrimSuffix(ask, "/") == strings.TrimSuffix(drained, "/") {
		st, _, err := fetchStatus(ctx, statusURL, token)
		if err != nil {
			return err
		}
		ask = ""
		for _, m := range st.Members {
			if m.Name != node && m.State == string(mesh.MemberAlive) && m.SignalingURL != "" {
				ask = m.SignalingURL
				break
			}
		}
		if ask == "" {
			return errors.New("cluster drain: no other node to watch the drain from")
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		st, _, err := fetchStatus(ctx, ask, token)
		if err != nil {
			continue
		}
		alive := false
		for _, m := range st.Members {
			if m.Name == node && m.State == string(mesh.MemberAlive) {
				alive = true
				fmt.Fprintf(w, "%s: %d participants left\n", node, m.Participants)
			}
		}
		if !alive {
			fmt.Fprintf(w, "%s has left the cluster\n", node)
			return nil
		}
	}
}
