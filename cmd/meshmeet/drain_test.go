package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// serveProc is one `meshmeet serve` child process of a test cluster.
type serveProc struct {
	name string
	url  string // http://host:port
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	// exited is closed when the process has exited; err is Wait's answer.
	exited chan struct{}
	err    error
	// running is closed once the node logs that it runs.
	running chan struct{}
}

// buildBinary builds meshmeet into a temporary directory and writes a new
// cluster secret file beside it.
func buildBinary(t *testing.T) (bin, secretFile string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "meshmeet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	secret, err := exec.Command(bin, "cluster", "init").Output()
	if err != nil {
		t.Fatal(err)
	}
	secretFile = filepath.Join(dir, "cluster.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return bin, secretFile
}

// procSpec describes one node of a test cluster.
type procSpec struct {
	name, region string
	voter        bool
	extra        []string
}

// clusterPorts hands out ports to the test's processes.
type clusterPorts struct {
	mu    sync.Mutex
	taken map[int]bool
}

func (cp *clusterPorts) port(t *testing.T) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.taken == nil {
		cp.taken = map[int]bool{}
	}
	return clusterFreePort(t, cp.taken)
}

// startServe starts one serve process that joins the gossip addresses
// join (none for the first) and returns it with its own gossip address.
func startServe(t *testing.T, bin, secretFile string, ports *clusterPorts, s procSpec, expect int, join []string) (*serveProc, string) {
	t.Helper()
	return startServeAt(t, bin, secretFile, ports, s, expect, fmt.Sprintf("127.0.0.1:%d", ports.port(t)), join)
}

// startServeAt is startServe with its gossip address chosen by the caller.
func startServeAt(t *testing.T, bin, secretFile string, ports *clusterPorts, s procSpec, expect int, gossip string, join []string) (*serveProc, string) {
	t.Helper()
	// A port found free may be taken by another program before the node
	// binds it (the machine runs other tests): start again on new ports.
	for try := 1; ; try++ {
		p := startServeOnce(t, bin, secretFile, ports, s, expect, gossip, join)
		select {
		case <-p.exited:
			if try < 5 && strings.Contains(p.log.String(), "address already in use") && !strings.Contains(p.log.String(), "--gossip-addr") {
				continue
			}
			t.Fatalf("%s exited at start: %v\n%s", s.name, p.err, p.log)
		case <-p.running:
		}
		return p, gossip
	}
}

func startServeOnce(t *testing.T, bin, secretFile string, ports *clusterPorts, s procSpec, expect int, gossip string, join []string) *serveProc {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports.port(t))
	args := []string{"serve",
		"--node-name", s.name, "--region", s.region,
		"--http-addr", httpAddr,
		"--rtc-port", fmt.Sprint(ports.port(t)),
		"--gossip-addr", gossip,
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports.port(t)),
		"--relay-addr", fmt.Sprintf("127.0.0.1:%d", ports.port(t)),
		"--bootstrap-expect", fmt.Sprint(expect),
		"--gossip-profile", "local",
		"--cluster-secret-file", secretFile,
		"--no-turn",
	}
	if s.voter {
		args = append(args, "--raft-voter")
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	args = append(args, s.extra...)
	p := &serveProc{name: s.name, url: "http://" + httpAddr, log: &syncbuf.Buffer{}, exited: make(chan struct{}), running: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), "MESHMEET_CLUSTER_SECRET=")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	go func() {
		for !strings.Contains(p.log.String(), "meshmeet is running") {
			select {
			case <-p.exited:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		close(p.running)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name, p.log)
		}
	})
	return p
}

// startServeCluster starts one process per spec, all joining each other,
// and waits until each is ready and lists the others as alternates.
func startServeCluster(t *testing.T, bin, secretFile string, ports *clusterPorts, specs []procSpec) ([]*serveProc, []string) {
	t.Helper()
	voters := 0
	for _, s := range specs {
		if s.voter {
			voters++
		}
	}
	// Every node joins every other: whichever starts first, each finds
	// the others (a join retried only every 10 s would slow the test).
	gossips := make([]string, len(specs))
	for i := range gossips {
		gossips[i] = fmt.Sprintf("127.0.0.1:%d", ports.port(t))
	}
	var procs []*serveProc
	for i, s := range specs {
		var join []string
		for j, g := range gossips {
			if j != i {
				join = append(join, g)
			}
		}
		p, _ := startServeAt(t, bin, secretFile, ports, s, voters, gossips[i], join)
		procs = append(procs, p)
	}
	for _, p := range procs {
		waitClusterView(t, p, len(procs)-1)
	}
	return procs, gossips
}

// waitClusterView waits until p is ready and GET /alternates lists n other
// nodes.
func waitClusterView(t *testing.T, p *serveProc, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if len(alternatesOf(p.url)) == n && status(p.url+"/readyz") == http.StatusOK {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: cluster did not form (alternates %v)\n%s", p.name, alternatesOf(p.url), p.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func alternatesOf(base string) []string {
	resp, err := http.Get(base + "/alternates")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct{ URLs []string }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	return body.URLs
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// talker is a bench participant that talks all the time, counts the audio
// it receives per sender, fails over when its node is lost, and records
// every error and welcome it is sent.
type talker struct {
	tag   uint32
	c     *client.Client
	audio *audioLog
	id    string // participant ID at join

	mu       sync.Mutex
	errors   []string
	welcomes []*wire.Message // welcomes after a move or failover
	roster   map[string]bool // the others, by participant ID, as events say
	resumed  []resumeStamp   // failovers, as the client reports them
}

// resumeStamp is one failover of a talker: when the client had resumed
// (welcome taken, new PeerConnections set up) and on which node.
type resumeStamp struct {
	at   time.Time
	node string
}

// resumes returns tk's failovers so far.
func (tk *talker) resumes() []resumeStamp {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return slices.Clone(tk.resumed)
}

// event records m: errors, welcomes and the roster.
func (tk *talker) event(m *wire.Message) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	switch m.Type {
	case wire.TypeError:
		tk.errors = append(tk.errors, m.Error.Code)
	case wire.TypeWelcome:
		tk.welcomes = append(tk.welcomes, m)
		tk.setRosterLocked(m.Participants)
	case wire.TypeParticipantJoined:
		for _, p := range m.Participants {
			tk.roster[p.ID] = true
		}
	case wire.TypeParticipantLeft:
		delete(tk.roster, m.Participant)
	}
}

func (tk *talker) setRosterLocked(ps []wire.Participant) {
	tk.roster = map[string]bool{}
	for _, p := range ps {
		tk.roster[p.ID] = true
	}
}

// sees reports whether tk's roster lists participant id.
func (tk *talker) sees(id string) bool {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.roster[id]
}

func startTalker(ctx context.Context, t *testing.T, base, room string, tag uint32) *talker {
	t.Helper()
	tk := &talker{tag: tag, audio: &audioLog{got: map[uint32][2]int{}}}
	src := &client.Synth{Sender: tag}
	audio, err := client.NewAudio("a", fmt.Sprintf("s%d", tag))
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tk.c, err = client.Join(jctx, base, room, client.Options{
		Name:     fmt.Sprintf("Talker %d", tag),
		Tracks:   []webrtc.TrackLocal{audio},
		OnTrack:  tk.audio.onTrack,
		Failover: true,
		OnFailover: func(node string) {
			tk.mu.Lock()
			tk.resumed = append(tk.resumed, resumeStamp{at: time.Now(), node: node})
			tk.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("talker %d joins %s: %v", tag, base, err)
	}
	t.Cleanup(tk.c.Close)
	tk.id = tk.c.Welcome.Participant
	tk.setRosterLocked(tk.c.Welcome.Participants)
	src.Ext = tk.c.Ext
	go src.RunTalk(ctx, audio, client.AudioOptions{TalkBytes: 80, SilenceBytes: 80, Talk: 1})
	go func() {
		for m := range tk.c.Events() {
			tk.event(m)
		}
	}()
	return tk
}

// startListener joins a participant that publishes nothing and counts
// the audio it receives. A join refused as busy (the per-source join rate:
// every test client comes from 127.0.0.1) is tried again.
func startListener(ctx context.Context, t *testing.T, base, room string, tag uint32) *talker {
	t.Helper()
	l := &talker{tag: tag, audio: &audioLog{got: map[uint32][2]int{}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := client.Join(jctx, base, room, client.Options{Name: fmt.Sprintf("Listener %d", tag), OnTrack: l.audio.onTrack, Failover: true})
		cancel()
		if err == nil {
			l.c = c
			break
		}
		if !strings.Contains(err.Error(), wire.CodeBusy) || time.Now().After(deadline) {
			t.Fatalf("listener %d joins: %v", tag, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(l.c.Close)
	l.id = l.c.Welcome.Participant
	l.setRosterLocked(l.c.Welcome.Participants)
	go func() {
		for m := range l.c.Events() {
			l.event(m)
		}
	}()
	return l
}

// hearsAll reports whether tk received at least n more audio packets from
// each of others than base holds (sender tag → count).
func (tk *talker) hearsAll(others []*talker, base map[uint32]int, n int) bool {
	for _, o := range others {
		if o != tk && tk.audio.count(o.tag)[0] < base[o.tag]+n {
			return false
		}
	}
	return true
}

func (tk *talker) counts(others []*talker) map[uint32]int {
	out := map[uint32]int{}
	for _, o := range others {
		out[o.tag] = tk.audio.count(o.tag)[0]
	}
	return out
}

// TestDrainCluster: participants on node n0 of a three-node cluster; `meshmeet
// cluster drain n0` moves them all to the other nodes, where each is the
// same participant and hears everyone again; no participant is sent an
// error or loses its session; n0 reports not ready and exits with status 0.
func TestDrainCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped under -short")
	}
	bin, secretFile := buildBinary(t)
	ports := &clusterPorts{}
	procs, _ := startServeCluster(t, bin, secretFile, ports, []procSpec{
		{name: "n0", region: "eu", voter: true, extra: []string{"--drain-timeout", "60s"}},
		{name: "n1", region: "eu", voter: true},
		{name: "n2", region: "eu", voter: true},
	})
	n0 := procs[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := roomname.New()
	var ts []*talker
	for tag := uint32(1); tag <= 4; tag++ {
		tk := startTalker(ctx, t, n0.url, room, tag)
		if tk.c.Node() != n0.url {
			t.Fatalf("talker %d placed on %s, want n0", tag, tk.c.Node())
		}
		ts = append(ts, tk)
	}
	for _, tk := range ts {
		waitFor(t, fmt.Sprintf("talker %d hears everyone on n0", tk.tag), func() bool {
			return tk.hearsAll(ts, nil, 25)
		})
	}
	// MESHMEET_DRAIN_PARTICIPANTS=N fills the meeting up to N participants
	// with listeners (they publish nothing) for the drain-time figure.
	var ls []*talker
	if v := os.Getenv("MESHMEET_DRAIN_PARTICIPANTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < len(ts) {
			t.Fatalf("MESHMEET_DRAIN_PARTICIPANTS=%q", v)
		}
		for tag := uint32(100); len(ts)+len(ls) < n; tag++ {
			l := startListener(ctx, t, n0.url, room, tag)
			if l.c.Node() != n0.url {
				t.Fatalf("listener %d placed on %s, want n0", tag, l.c.Node())
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			waitFor(t, fmt.Sprintf("listener %d hears the talkers", l.tag), func() bool { return l.hearsAll(ts, nil, 25) })
		}
	}

	start := time.Now()
	out, err := exec.Command(bin, "cluster", "drain", "--url", procs[1].url, "--cluster-secret-file", secretFile, "n0").CombinedOutput()
	if err != nil {
		t.Fatalf("cluster drain: %v\n%s", err, out)
	}
	select {
	case <-n0.exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("n0 did not exit after the drain\n%s", n0.log)
	}
	took := time.Since(start)
	if n0.err != nil {
		t.Fatalf("n0 exited with %v, want status 0\n%s", n0.err, n0.log)
	}
	if !strings.Contains(n0.log.String(), "drain: done") {
		t.Errorf("n0 did not log a finished drain:\n%s", n0.log)
	}
	t.Logf("drain of %d participants took %v (command to exit)", len(ts)+len(ls), took.Round(time.Millisecond))
	for _, l := range ls {
		b := l.counts(ts)
		waitFor(t, fmt.Sprintf("listener %d hears the talkers after the drain", l.tag), func() bool { return l.hearsAll(ts, b, 25) })
		if l.c.Node() == n0.url {
			t.Errorf("listener %d is still on n0", l.tag)
		}
		l.mu.Lock()
		if len(l.errors) > 0 {
			t.Errorf("listener %d was sent errors %v", l.tag, l.errors)
		}
		l.mu.Unlock()
	}

	base := map[*talker]map[uint32]int{}
	for _, tk := range ts {
		base[tk] = tk.counts(ts)
	}
	for _, tk := range ts {
		if node := tk.c.Node(); node == n0.url {
			t.Errorf("talker %d is still on n0", tk.tag)
		}
		waitFor(t, fmt.Sprintf("talker %d hears everyone after the drain", tk.tag), func() bool {
			return tk.hearsAll(ts, base[tk], 25)
		})
		select {
		case <-tk.c.Done():
			t.Errorf("talker %d's session ended: %v", tk.tag, tk.c.Err())
		default:
		}
		tk.mu.Lock()
		if len(tk.errors) > 0 {
			t.Errorf("talker %d was sent errors %v", tk.tag, tk.errors)
		}
		for _, w := range tk.welcomes {
			if w.Participant != tk.id {
				t.Errorf("talker %d moved as %q, want its ID %q", tk.tag, w.Participant, tk.id)
			}
		}
		if len(tk.welcomes) == 0 {
			t.Errorf("talker %d got no welcome from another node", tk.tag)
		}
		tk.mu.Unlock()
	}
}

// TestDrainAdminRefuses: POST /admin/drain needs the admin token, POST and
// the receiving node's name; other admin paths pass through.
func TestDrainAdminRefuses(t *testing.T) {
	token := []byte("0123456789abcdef0123456789abcdef")
	var ref atomic.Pointer[drainer]
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := withDrainAdmin(next, token, "n0", &ref, context.Background())
	do := func(method, target, auth string) int {
		req := httptest.NewRequest(method, target, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	good := mesh.AdminAuthorization(token)
	for _, c := range []struct {
		what, method, target, auth string
		want                       int
	}{
		{"no token", "POST", "/admin/drain?node=n0", "", http.StatusUnauthorized},
		{"another token", "POST", "/admin/drain?node=n0", mesh.AdminAuthorization([]byte("another token of 32 bytes 012345")), http.StatusUnauthorized},
		{"GET", "GET", "/admin/drain?node=n0", good, http.StatusMethodNotAllowed},
		{"another node", "POST", "/admin/drain?node=n1", good, http.StatusConflict},
		{"no node", "POST", "/admin/drain", good, http.StatusConflict},
		{"before signaling", "POST", "/admin/drain?node=n0", good, http.StatusServiceUnavailable},
		{"status passes", "GET", "/admin/status", good, http.StatusTeapot},
	} {
		if got := do(c.method, c.target, c.auth); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
}

// TestDrainSignals: SIGTERM starts a drain (readyz 503 at once, the
// draining flag in every node's cluster status); a participant that does
// not follow its redirect keeps the drain going, and a second SIGTERM stops
// the node at once, long before --drain-timeout.
func TestDrainSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped under -short")
	}
	bin, secretFile := buildBinary(t)
	ports := &clusterPorts{}
	procs, _ := startServeCluster(t, bin, secretFile, ports, []procSpec{
		{name: "n0", region: "eu", voter: true, extra: []string{"--drain-timeout", "10m"}},
		{name: "n1", region: "eu", voter: true},
		{name: "n2", region: "eu", voter: true},
	})
	n0 := procs[0]
	// A raw client: it joins and then reads without ever acting on what
	// it is told.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n0.url, "http")+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	join, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: roomname.New()})
	if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
		t.Fatal(err)
	}
	redirected := make(chan string, 1)
	go func() {
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m wire.Message
			if json.Unmarshal(data, &m) == nil && m.Type == wire.TypeRedirect {
				select {
				case redirected <- m.URL:
				default:
				}
			}
		}
	}()
	waitFor(t, "the participant on n0", func() bool {
		out, err := exec.Command(bin, "cluster", "status", "--json", "--url", n0.url, "--cluster-secret-file", secretFile).Output()
		return err == nil && strings.Contains(string(out), `"participants":1`)
	})

	n0.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "n0 not ready", func() bool { return status(n0.url+"/readyz") == http.StatusServiceUnavailable })
	waitFor(t, "n1 sees n0 draining", func() bool {
		out, err := exec.Command(bin, "cluster", "status", "--json", "--url", procs[1].url, "--cluster-secret-file", secretFile).Output()
		if err != nil {
			return false
		}
		var st struct {
			Members []struct {
				Name     string
				Draining bool
			}
		}
		json.Unmarshal(out, &st)
		for _, m := range st.Members {
			if m.Name == "n0" {
				return m.Draining
			}
		}
		return false
	})
	select {
	case u := <-redirected:
		if u != procs[1].url && u != procs[2].url {
			t.Errorf("redirected to %q, not to n1 or n2", u)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the participant was not redirected")
	}
	select {
	case <-n0.exited:
		t.Fatalf("n0 exited while a participant was left: %v", n0.err)
	case <-time.After(2 * time.Second):
	}
	n0.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n0.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("n0 did not stop on the second SIGTERM\n%s", n0.log)
	}
	if !strings.Contains(n0.log.String(), "drain: stopping at once") {
		t.Errorf("n0 did not log the stop:\n%s", n0.log)
	}
}
