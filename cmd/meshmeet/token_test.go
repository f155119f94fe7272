package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
	"github.com/meshmeet/meshmeet/web"
)

const testSecret = "a-test-jwt-secret-that-is-long-enough-0123456789"

func secretFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwt.secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokenCommand: meshmeet token mints a token the nodes' verifier
// accepts, with the claims asked for; bad input stops it with a message.
func TestTokenCommand(t *testing.T) {
	f := secretFile(t, testSecret)
	out, err := run(t, "token", "--jwt-secret-file", f, "--room", "Daily Standup", "--moderator", "--name", "Ada", "--ttl", "2h", "--jwt-audience", "meet")
	if err != nil {
		t.Fatalf("token: %v\n%s", err, out)
	}
	tok := strings.TrimSpace(out)
	a, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: []byte(testSecret), Audience: "meet"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Verify(tok, "Daily Standup")
	if err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	if !c.Moderator || c.Name != "Ada" || c.ExpiresAt == nil || time.Until(c.ExpiresAt.Time) > 2*time.Hour+time.Minute || time.Until(c.ExpiresAt.Time) < 119*time.Minute {
		t.Fatalf("claims: %+v", c)
	}
	if _, err := a.Verify(tok, "another room"); err == nil {
		t.Fatal("the token admits to another room")
	}

	short := secretFile(t, "too-short")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "--jwt-secret-file", short, "--room", "r"}, "at least 32 bytes"},
		{[]string{"token", "--jwt-secret-file", secretFile(t, ""), "--room", "r"}, "empty"},
		{[]string{"token", "--jwt-secret-file", f, "--room", "a/b"}, "--room"},
		{[]string{"token", "--jwt-secret-file", f, "--room", "r", "--ttl", "-1h"}, "--ttl"},
		{[]string{"token", "--jwt-secret-file", f}, "room"},
	} {
		out, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%v: got %v (%s), want an error with %q", tc.args, err, out, tc.want)
		}
		if strings.Contains(err.Error()+out, testSecret) {
			t.Errorf("%v: the error shows the secret", tc.args)
		}
	}
}

// TestServeAuthFlagsRefuseBadConfig: serve stops before starting anything
// when access control is misconfigured, saying which flag is wrong.
func TestServeAuthFlagsRefuseBadConfig(t *testing.T) {
	short := secretFile(t, "short-secret")
	good := secretFile(t, testSecret)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth", "jwt"}, "--jwt-secret-file or --jwt-public-key"},
		{[]string{"--auth", "jwt", "--jwt-secret-file", short}, "at least 32 bytes"},
		{[]string{"--auth", "jwt", "--jwt-secret-file", secretFile(t, "  ")}, "empty"},
		{[]string{"--auth", "jwt", "--jwt-secret-file", filepath.Join(t.TempDir(), "missing")}, "--jwt-secret-file"},
		{[]string{"--auth", "jwt", "--jwt-secret-file", good, "--jwt-public-key", good}, "not both"},
		{[]string{"--auth", "jwt", "--jwt-public-key", good}, "--jwt-public-key"},
		{[]string{"--auth", "password"}, "--auth must be none or jwt"},
		{[]string{"--auth-create-only"}, "need --auth jwt"},
		{[]string{"--jwt-secret-file", good}, "need --auth jwt"},
		{[]string{"--trusted-proxy", "10.0.0.0/33"}, "--trusted-proxy"},
		{[]string{"--trusted-proxy", "proxy.example"}, "--trusted-proxy"},
	} {
		out, err := run(t, append([]string{"serve", "--log-level", "error"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v (%s), want an error with %q", tc.args, err, out, tc.want)
		}
	}
	var a authConfig
	a.TrustedProxies = *cli.NewStringSlice("10.0.0.0/8", "192.0.2.7,2001:db8::/32")
	s, err := a.build()
	if err != nil || len(s.trustedProxies) != 3 || s.trustedProxies[1].String() != "192.0.2.7/32" || s.auth != nil || s.strong {
		t.Fatalf("trusted proxies: %+v, %v", s, err)
	}
}

// session is a raw signaling WebSocket for tests that speak the protocol
// themselves (tokens and passwords are not bench client options).
type session struct {
	ws    *websocket.Conn
	first []byte        // the server's first answer to join, as sent
	msg   *wire.Message // the same, decoded
	node  string        // host:port of the node that answered (after redirects)
	in    chan *wire.Message
	raw   chan []byte // the same messages as sent
	last  []byte      // the message await returned, as sent
}

// joinRaw joins through the node at addr from the local address src (""
// for any), following redirects. A welcomed session keeps reading (into
// in) and pings until the test ends.
func joinRaw(ctx context.Context, t *testing.T, addr, src string, m wire.Message) *session {
	t.Helper()
	return joinRawHeader(ctx, t, addr, src, nil, m)
}

// joinRawHeader is joinRaw with extra HTTP headers on the upgrade.
func joinRawHeader(ctx context.Context, t *testing.T, addr, src string, hdr http.Header, m wire.Message) *session {
	t.Helper()
	m.Type, m.Version = wire.TypeJoin, wire.Version
	for range 4 {
		d := &net.Dialer{}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: hc, HTTPHeader: hdr, Subprotocols: []string{wire.Subprotocol}})
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		ws.SetReadLimit(wire.MaxFrameBytes)
		data, _ := json.Marshal(&m)
		if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
			t.Fatal(err)
		}
		_, first, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("no answer to join at %s: %v", addr, err)
		}
		var ans wire.Message
		if err := json.Unmarshal(first, &ans); err != nil {
			t.Fatal(err)
		}
		if ans.Type == "redirect" && ans.URL != "" {
			ws.CloseNow()
			u, err := url.Parse(ans.URL)
			if err != nil {
				t.Fatal(err)
			}
			addr = u.Host
			continue
		}
		s := &session{ws: ws, first: first, msg: &ans, node: addr, in: make(chan *wire.Message, 256), raw: make(chan []byte, 256)}
		if ans.Type != wire.TypeWelcome && ans.Type != wire.TypeWaiting {
			ws.CloseNow()
			return s
		}
		rctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(func() { cancel(); ws.CloseNow() })
		go func() {
			defer close(s.in)
			for {
				_, data, err := ws.Read(rctx)
				if err != nil {
					return
				}
				var m wire.Message
				if json.Unmarshal(data, &m) == nil {
					select {
					case s.in <- &m:
						s.raw <- data
					default:
					}
				}
			}
		}()
		go func() {
			tk := time.NewTicker(10 * time.Second)
			defer tk.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-tk.C:
					ws.Write(rctx, websocket.MessageText, []byte(`{"type":"ping"}`))
				}
			}
		}()
		return s
	}
	t.Fatal("too many redirects")
	return nil
}

func (s *session) send(ctx context.Context, t *testing.T, raw string) {
	t.Helper()
	if err := s.ws.Write(ctx, websocket.MessageText, []byte(raw)); err != nil {
		t.Fatal(err)
	}
}

// await returns the first message of type typ, skipping others.
func (s *session) await(t *testing.T, typ wire.Type) *wire.Message {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-s.in:
			if !ok {
				t.Fatalf("session ended waiting for %s", typ)
			}
			raw := <-s.raw
			if m.Type == typ {
				s.last = raw
				return m
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", typ)
		}
	}
}

// nearRegion1 are the round trips of a client next to region-1.
var nearRegion1 = []wire.RegionRTT{{Region: "region-1", MS: 2}, {Region: "region-0", MS: 250}}

// refused is the one refusal every refused join gets, byte for byte.
const refused = `{"type":"error","error":{"code":"refused","message":"could not join: wrong password, locked room or not allowed","fatal":true}}`

// TestPasswordAcrossNodes: a password a participant sets through node n0
// is in the raft directory, so a join through node n1 is refused without
// it or with a wrong one (the same frame as any refusal) and admitted with
// it; removing it opens the room again. A lobby denial across the nodes
// ends in the same frame.
func TestPasswordAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("two-node cluster; skipped in -short mode")
	}
	nodes := serveNodes(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	room := roomname.New()
	const pw = "zqx-password-canary-7731"

	var alice *session
	waitFor(t, "the cluster takes joins", func() bool {
		s := joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Name: "Alice"})
		if s.msg.Type == wire.TypeWelcome {
			alice = s
			return true
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	alice.send(ctx, t, `{"type":"set-password","password":"`+pw+`"}`)
	if ev := alice.await(t, wire.TypeSecurity); ev.PasswordSet == nil || !*ev.PasswordSet {
		t.Fatalf("security event: %+v", ev)
	}

	answeredBy := map[string]int{}
	for _, tc := range []struct {
		name, password string
		admitted       bool
	}{
		{"no password", "", false},
		{"wrong password", "zqx-wrong", false},
		{"right password", pw, true},
	} {
		// Bob is next to region-1: placement keeps him on n1, so the
		// meeting spans both nodes and n1 checks the password.
		s := joinRaw(ctx, t, nodes[1], "", wire.Message{Room: room, Name: "Bob", Password: tc.password, RTTs: nearRegion1})
		answeredBy[s.node]++
		if tc.admitted {
			if s.msg.Type != wire.TypeWelcome {
				t.Fatalf("%s: got %s", tc.name, s.first)
			}
			continue
		}
		if string(s.first) != refused {
			t.Fatalf("%s: got %s, want %s", tc.name, s.first, refused)
		}
	}
	if answeredBy[nodes[1]] != 3 {
		t.Fatalf("joins answered by %v, want all by n1 (%s)", answeredBy, nodes[1])
	}

	alice.send(ctx, t, `{"type":"set-password"}`)
	if ev := alice.await(t, wire.TypeSecurity); ev.PasswordSet == nil || *ev.PasswordSet {
		t.Fatalf("security event after removal: %+v", ev)
	}
	carol := joinRaw(ctx, t, nodes[1], "", wire.Message{Room: room, Name: "Carol", RTTs: nearRegion1})
	if carol.msg.Type != wire.TypeWelcome || carol.node != nodes[1] {
		t.Fatalf("join after the password was removed: %s", carol.first)
	}
	// A password set through n0 is announced to the meeting on n1 too.
	alice.send(ctx, t, `{"type":"set-password","password":"`+pw+`"}`)
	if ev := carol.await(t, wire.TypeSecurity); ev.PasswordSet == nil || !*ev.PasswordSet || ev.Participant != alice.msg.Participant {
		t.Fatalf("security event on the other node: %+v", ev)
	}
	alice.send(ctx, t, `{"type":"set-password"}`)
	if ev := carol.await(t, wire.TypeSecurity); ev.PasswordSet == nil || *ev.PasswordSet {
		t.Fatalf("security event on the other node after removal: %+v", ev)
	}
	for ev := alice.await(t, wire.TypeSecurity); ev.PasswordSet == nil || *ev.PasswordSet; ev = alice.await(t, wire.TypeSecurity) {
	}

	// A lobby denial, across the nodes too, ends in the very same frame.
	alice.send(ctx, t, `{"type":"set-lobby","lobby":true}`)
	// The moderation event follows the directory's commit: only then is
	// the lobby on for a join through either node.
	for alice.await(t, wire.TypeModeration).Action != wire.ActionLobbyOn {
	}
	dave := joinRaw(ctx, t, nodes[1], "", wire.Message{Room: room, Name: "Dave", RTTs: nearRegion1})
	if dave.msg.Type != wire.TypeWaiting {
		t.Fatalf("join into the lobby: %s", dave.first)
	}
	var daveID string
	for daveID == "" {
		for _, p := range alice.await(t, wire.TypeLobby).Participants {
			if p.Name == "Dave" {
				daveID = p.ID
			}
		}
	}
	alice.send(ctx, t, `{"type":"deny","participant":"`+daveID+`"}`)
	dave.await(t, wire.TypeError)
	if string(dave.last) != refused {
		t.Fatalf("lobby denial: got %s, want %s", dave.last, refused)
	}
}

// TestRefusalTiming is the existence oracle's timing half (issue 13, 7b):
// under --auth jwt --auth-create-only, a wrong password on a live room
// and a guest's join to a never-used name are refused with the same frame,
// and their answer times come from one distribution: a two-sample
// Kolmogorov-Smirnov test over 200 samples each, interleaved, each from
// its own source address (so the guessing backoff never steps in), in
// alternating order, reports
// its p-value and fails below 0.001.
func TestRefusalTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("400 password checks; skipped in -short mode")
	}
	f := secretFile(t, testSecret)
	nodes := serveNodes(t, 1, "--auth", "jwt", "--jwt-secret-file", f, "--auth-create-only")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const samples = 200
	const rooms = 10 // 20 wrong passwords each: the room's free failures
	var live []string
	for range rooms {
		room := roomname.New()
		out, err := run(t, "token", "--jwt-secret-file", f, "--room", room, "--moderator")
		if err != nil {
			t.Fatal(err)
		}
		var mod *session
		waitFor(t, "the node takes joins", func() bool {
			mod = joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Token: strings.TrimSpace(out)})
			return mod.msg.Type == wire.TypeWelcome
		})
		mod.send(ctx, t, `{"type":"set-password","password":"the-right-one"}`)
		mod.await(t, wire.TypeSecurity)
		live = append(live, room)
	}
	var wrong, fresh []float64
	for i := range samples {
		for _, k := range [][2]int{{0, 1}, {1, 0}}[i%2] {
			src := fmt.Sprintf("127.0.%d.%d", 10+k, i+1)
			m := wire.Message{Room: roomname.New(), Password: "guess-" + fmt.Sprint(i)}
			if k == 0 {
				m.Room = live[i%rooms]
			}
			start := time.Now()
			s := joinRaw(ctx, t, nodes[0], src, m)
			d := time.Since(start).Seconds() * 1000
			if string(s.first) != refused {
				t.Fatalf("sample %d/%d: got %s", i, k, s.first)
			}
			if k == 0 {
				wrong = append(wrong, d)
			} else {
				fresh = append(fresh, d)
			}
		}
	}
	dstat, p := ks2(wrong, fresh)
	t.Logf("wrong password on a live room vs never-used name: median %.1f ms vs %.1f ms, KS D=%.3f, p=%.3g (n=%d each)",
		median(wrong), median(fresh), dstat, p, samples)
	if p < 0.001 {
		t.Fatalf("the refusal times tell a live passworded room from a never-used name: p=%.3g", p)
	}
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// ks2 is the two-sample Kolmogorov-Smirnov statistic D and its asymptotic
// p-value.
func ks2(a, b []float64) (float64, float64) {
	a, b = append([]float64(nil), a...), append([]float64(nil), b...)
	sort.Float64s(a)
	sort.Float64s(b)
	var d float64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x := math.Min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	ne := float64(len(a)*len(b)) / float64(len(a)+len(b))
	lambda := (math.Sqrt(ne) + 0.12 + 0.11/math.Sqrt(ne)) * d
	p := 0.0
	for k := 1; k <= 100; k++ {
		p += 2 * math.Pow(-1, float64(k-1)) * math.Exp(-2*float64(k*k)*lambda*lambda)
	}
	return d, math.Max(0, math.Min(1, p))
}

// TestNoThirdPartyHost (issue 13, 7d): a node in its default configuration
// (dev mode; only its ports moved so tests run side by side) names no host
// outside the deployment in anything it serves: the page, every web
// client asset as served over HTTP, every response header, /api/words,
// /regions, and the ICE servers of a welcome.
func TestNoThirdPartyHost(t *testing.T) {
	taken := map[int]bool{}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)) }
	httpAddr := addr()
	args := []string{"meshmeet", "serve", "--http-addr", httpAddr, "--rtc-port", fmt.Sprint(clusterFreePort(t, taken)),
		"--gossip-addr", addr(), "--raft-addr", addr(), "--relay-addr", addr(), "--turn-addr", addr(), "--log-level", "error"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		app := newApp()
		app.Writer = io.Discard
		if err := app.RunContext(ctx, args); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + httpAddr
	waitFor(t, "node ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// Any scheme://host (or stun:/turn: host) must be the deployment's.
	ref := regexp.MustCompile(`(?i)\b(?:https?|wss?|stuns?|turns?):(?://)?(\[[0-9a-f:.]+\]|[a-z0-9][a-z0-9.-]*)`)
	checked := 0
	check := func(where, text string) {
		for _, m := range ref.FindAllStringSubmatch(text, -1) {
			checked++
			if h := strings.Trim(m[1], "[]"); h != "127.0.0.1" && h != "localhost" {
				t.Errorf("%s names a host outside the deployment: %s", where, m[0])
			}
		}
	}
	paths := []string{"/", "/" + url.PathEscape(roomname.New()), "/api/words", "/regions"}
	fs.WalkDir(web.Assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, "/static/"+p)
		}
		return err
	})
	for _, p := range paths {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
		check(p, string(body))
		for k, vs := range resp.Header {
			for _, v := range vs {
				check(p+" header "+k, v)
			}
		}
	}
	jctx, jcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer jcancel()
	s := joinRaw(jctx, t, httpAddr, "", wire.Message{Room: roomname.New()})
	if s.msg.Type != wire.TypeWelcome {
		t.Fatalf("join: %s", s.first)
	}
	if len(s.msg.ICEServers) == 0 {
		t.Error("the default configuration hands out no ICE server (TURN is on by default)")
	}
	for _, ice := range s.msg.ICEServers {
		for _, u := range ice.URLs {
			check("welcome iceServers", u)
		}
	}
	t.Logf("%d paths served, %d host references checked", len(paths), checked)
}

// TestModeratorTokenSkipsPassword: under --auth jwt a moderator's token
// enters a room with a password without it; a participant's token, or a
// guest under --auth-create-only, needs it.
func TestModeratorTokenSkipsPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node; skipped in -short mode")
	}
	f := secretFile(t, testSecret)
	nodes := serveNodes(t, 1, "--auth", "jwt", "--jwt-secret-file", f, "--auth-create-only")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room := roomname.New()
	token := func(args ...string) string {
		out, err := run(t, append([]string{"token", "--jwt-secret-file", f, "--room", room}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	mod, member := token("--moderator"), token()
	var first *session
	waitFor(t, "the node takes joins", func() bool {
		first = joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Token: mod})
		return first.msg.Type == wire.TypeWelcome
	})
	first.send(ctx, t, `{"type":"set-password","password":"pw-for-guests"}`)
	first.await(t, wire.TypeSecurity)
	for _, tc := range []struct {
		name  string
		m     wire.Message
		admit bool
	}{
		{"moderator token, no password", wire.Message{Room: room, Token: mod}, true},
		{"participant token, no password", wire.Message{Room: room, Token: member}, false},
		{"participant token, password", wire.Message{Room: room, Token: member, Password: "pw-for-guests"}, true},
		{"guest, no password", wire.Message{Room: room}, false},
		{"guest, password", wire.Message{Room: room, Password: "pw-for-guests"}, true},
	} {
		s := joinRaw(ctx, t, nodes[0], "", tc.m)
		if tc.admit && s.msg.Type != wire.TypeWelcome || !tc.admit && string(s.first) != refused {
			t.Errorf("%s: got %s", tc.name, s.first)
		}
	}
	// A participant's set-password is refused (not fatal) and changes nothing.
	m := joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Token: member, Password: "pw-for-guests"})
	m.send(ctx, t, `{"type":"set-password"}`)
	if e := m.await(t, wire.TypeError); e.Error.Code != wire.CodeNotAllowed || e.Error.Fatal {
		t.Fatalf("participant's set-password: %+v", e.Error)
	}
	if s := joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room}); string(s.first) != refused {
		t.Fatalf("the password is gone after a participant's set-password: %s", s.first)
	}
}

// TestGuessingLimitsBySource: wrong passwords are counted per source, and
// behind a --trusted-proxy the source is the X-Forwarded-For client: a
// client past its free failures is refused even with the right password
// while another client behind the same proxy gets in with it. Without
// --trusted-proxy the header is ignored and the proxy's address is the
// source.
func TestGuessingLimitsBySource(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nodes; skipped in -short mode")
	}
	for _, trusted := range []bool{true, false} {
		var extra []string
		if trusted {
			extra = []string{"--trusted-proxy", "127.0.0.0/8"}
		}
		nodes := serveNodes(t, 1, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		room := roomname.New()
		var alice *session
		waitFor(t, "the node takes joins", func() bool {
			alice = joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Name: "Alice"})
			return alice.msg.Type == wire.TypeWelcome
		})
		alice.send(ctx, t, `{"type":"set-password","password":"right"}`)
		alice.await(t, wire.TypeSecurity)
		from := func(client string) http.Header { return http.Header{"X-Forwarded-For": {client}} }
		// Mallory (203.0.113.9) guesses wrong ten times from behind the proxy
		// (past the 5 free failures the wait doubles from 1 s: 32 s now).
		for i := range 10 {
			if s := joinRawHeader(ctx, t, nodes[0], "127.0.0.1", from("203.0.113.9"), wire.Message{Room: room, Password: fmt.Sprint("guess", i)}); string(s.first) != refused {
				t.Fatalf("guess %d: %s", i, s.first)
			}
		}
		// Now even the right password is refused for Mallory's source.
		if s := joinRawHeader(ctx, t, nodes[0], "127.0.0.1", from("203.0.113.9"), wire.Message{Room: room, Password: "right"}); string(s.first) != refused {
			t.Fatalf("trusted=%v: the right password from a source in backoff: %s", trusted, s.first)
		}
		// Bob behind the same proxy: in with the right password only when
		// the proxy is trusted (otherwise he shares the proxy's backoff).
		s := joinRawHeader(ctx, t, nodes[0], "127.0.0.1", from("198.51.100.4"), wire.Message{Room: room, Password: "right"})
		if trusted && s.msg.Type != wire.TypeWelcome {
			t.Fatalf("trusted proxy: another client with the right password: %s", s.first)
		}
		if !trusted && string(s.first) != refused {
			t.Fatalf("untrusted proxy: X-Forwarded-For was believed: %s", s.first)
		}
		cancel()
	}
}

// TestAccessSecretsNotLogged: at debug level, a meeting with a password
// set, wrong passwords, bad and good tokens leaves no password, token, room
// or display name in the node's log (raft, memberlist, pion and quic-go
// log through the same handler), and the log says why joins were refused.
func TestAccessSecretsNotLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node; skipped in -short mode")
	}
	// serve's logger writes to os.Stderr as it is when the node starts:
	// point it at a pipe for as long as the node starts.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&logs, r); close(copied) }()
	t.Cleanup(func() { // registered first: runs after the node stopped
		w.Close()
		<-copied
		r.Close()
	})
	f := secretFile(t, testSecret)
	room := "zqx-room-" + roomname.New()
	stderr := os.Stderr
	os.Stderr = w
	nodes := serveNodes(t, 1, "--auth", "jwt", "--jwt-secret-file", f, "--auth-create-only", "--log-level", "debug")
	os.Stderr = stderr

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := run(t, "token", "--jwt-secret-file", f, "--room", room, "--moderator", "--name", "zqx-name-mod")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	out, err = run(t, "token", "--jwt-secret-file", secretFile(t, "another-secret-another-secret-another-secret"), "--room", room)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.TrimSpace(out)
	var mod *session
	waitFor(t, "the node takes joins", func() bool {
		mod = joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Token: tok})
		return mod.msg.Type == wire.TypeWelcome
	})
	mod.send(ctx, t, `{"type":"set-password","password":"zqx-pass-right"}`)
	mod.await(t, wire.TypeSecurity)
	for _, m := range []wire.Message{
		{Room: room, Password: "zqx-pass-wrong"},
		{Room: room, Token: forged},
		{Room: room, Token: "zqx-not-a-token"},
		{Room: "zqx-room-never-used", Password: "zqx-pass-other"},
	} {
		if s := joinRaw(ctx, t, nodes[0], "", m); string(s.first) != refused {
			t.Fatalf("got %s", s.first)
		}
	}
	if s := joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Name: "zqx-name-guest", Password: "zqx-pass-right"}); s.msg.Type != wire.TypeWelcome {
		t.Fatalf("right password: %s", s.first)
	}
	mod.send(ctx, t, `{"type":"set-password"}`)
	mod.await(t, wire.TypeSecurity)

	waitFor(t, "the refusals logged", func() bool { return strings.Count(logs.String(), "join refused") >= 4 })
	text := logs.String()
	secrets := []string{"zqx", testSecret}
	for _, tk := range []string{tok, forged} {
		parts := strings.Split(tk, ".")
		secrets = append(secrets, parts[1][:16], parts[1][len(parts[1])-16:], parts[2][:16])
	}
	for _, secret := range secrets {
		if i := strings.Index(text, secret); i >= 0 {
			t.Errorf("the log holds %q: …%s…", secret, text[max(0, i-200):min(len(text), i+100)])
		}
	}
	for _, reason := range []string{`reason="password: wrong or missing"`, `reason="token: token signature is invalid"`, `reason="token: token is malformed"`, `reason="token: needed to create a room"`} {
		if !strings.Contains(text, reason) {
			t.Errorf("no log line with %s", reason)
		}
	}
	t.Logf("%d bytes of debug log checked", len(text))
}

// TestServePublicKeyAuth: with --jwt-public-key (an Ed25519 PEM) a node
// admits EdDSA tokens of the matching private key and refuses, with the
// one refusal, an HS256 token keyed with the public key file's bytes (the
// algorithm confusion attack), an unsigned one and one of another key.
func TestServePublicKeyAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node; skipped in -short mode")
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keyFile := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(keyFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := serveNodes(t, 1, "--auth", "jwt", "--jwt-public-key", keyFile, "--jwt-issuer", "portal")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room := roomname.New()
	claims := func() signaling.Claims {
		now := time.Now()
		return signaling.Claims{Room: room, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "portal", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}}
	}
	sign := func(m jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(m, claims()).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding
	body, _ := json.Marshal(claims())
	unsigned := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64.EncodeToString(body) + "."

	good := sign(jwt.SigningMethodEdDSA, priv)
	waitFor(t, "the node admits an EdDSA token", func() bool {
		return joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Token: good}).msg.Type == wire.TypeWelcome
	})
	for name, tok := range map[string]string{
		"HS256 keyed with the public key PEM": sign(jwt.SigningMethodHS256, pemBytes),
		"HS256 keyed with the public key":     sign(jwt.SigningMethodHS256, []byte(pub)),
		"alg none":                            unsigned,
		"another Ed25519 key":                 sign(jwt.SigningMethodEdDSA, other),
	} {
		if s := joinRaw(ctx, t, nodes[0], "", wire.Message{Room: room, Token: tok}); string(s.first) != refused {
			t.Errorf("%s: got %s", name, s.first)
		}
	}
}
