package bridge

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Memory per subscribed track, measured on the bridge alone. The pion
// clients run in a child process (this test binary again, TestMemClients),
// so the heap and goroutine stacks measured here are the bridge's only.
//
// Two rooms hold the same number of listeners, which publish nothing:
// room "one" has one talker with one audio track, room "many" two talkers
// with memTracks audio tracks each. The talkers publish first; then the
// listeners of "one" join (1 subscription each) and the bridge's heap is
// measured, then those of "many" (2*memTracks each) and it is measured
// again. A listener costs the same in both rooms but for its
// subscriptions, so
//
//	per subscribed track = (Δmany - Δone) / (listeners * (2*memTracks - 1))
//
// with the published tracks and their packet caches already there before
// either step. Every audio track sends a 20 ms Opus-sized packet every
// memInterval; the bridge is measured once every listener received every
// track and a few more seconds have passed.
//
//	go test -run='^$' -bench=MemPerSubscribedTrack -benchtime=1x ./bridge
//
// reports bytes/track (heap in use plus goroutine stacks, after two GCs),
// heap-B/track, stack-B/track, goroutines/track and bytes/listener.
// MESHMEET_MEM_PROFILE=file writes the bridge's heap profile at the end
// (inuse_space; go tool pprof -sample_index=inuse_space -top file).

const (
	memChildEnv  = "MESHMEET_BRIDGE_MEM_CLIENTS"
	memTracks    = 8 // audio tracks per talker in room "many" (DefaultMaxTracksPerParticipant)
	memInterval  = 100 * time.Millisecond
	memTargetKB  = 64 // issue 15: below 64 KB per subscribed track
	memFailAbove = 2 * memTargetKB
)

// memMsg is one line between the test and its client process.
type memMsg struct {
	Op   string                   `json:"op"`
	ID   string                   `json:"id"`
	PC   int                      `json:"pc,omitempty"`
	SDP  string                   `json:"sdp,omitempty"`
	Cand *webrtc.ICECandidateInit `json:"cand,omitempty"`
	N    int                      `json:"n,omitempty"`
}

// memResult is one measurement: per subscribed track and per listener.
type memResult struct {
	tracks        int
	perTrack      float64 // heap in use + stacks, bytes
	heapPerTrack  float64
	stackPerTrack float64
	gorPerTrack   float64
	perListener   float64
	rssPerTrack   float64 // resident set size; includes the GC's headroom
}

func (r memResult) String() string {
	return fmt.Sprintf("%d subscribed tracks: %.1f KB per subscribed track (heap %.1f KB, stacks %.1f KB, %.2f goroutines; RSS %.1f KB), %.1f KB per listener besides",
		r.tracks, r.perTrack/1024, r.heapPerTrack/1024, r.stackPerTrack/1024, r.gorPerTrack, r.rssPerTrack/1024, r.perListener/1024)
}

// memPart is a participant of the bridge; p is set when ready is closed
// (nil if Join failed).
type memPart struct {
	ready chan struct{}
	p     *Participant
}

// memParent is the bridge side: it relays signaling between the bridge's
// participants and the client process.
type memParent struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser

	encMu sync.Mutex
	enc   *json.Encoder

	mu   sync.Mutex
	ps   map[string]*memPart
	recv map[string]int // tracks receiving, by participant
	err  error
}

func startMemClients(t testing.TB) *memParent {
	t.Helper()
	toChild, childIn, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	childOut, fromChild, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemClients$", "-test.v=false")
	cmd.Env = append(os.Environ(), memChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{toChild, fromChild} // fd 3, 4
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChild.Close()
	fromChild.Close()
	m := &memParent{t: t, cmd: cmd, in: childIn, enc: json.NewEncoder(childIn), ps: map[string]*memPart{}, recv: map[string]int{}}
	go m.readLoop(childOut)
	return m
}

func (m *memParent) send(msg memMsg) {
	m.encMu.Lock()
	defer m.encMu.Unlock()
	_ = m.enc.Encode(msg)
}

func (m *memParent) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
}

func (m *memParent) readLoop(r io.Reader) {
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var msg memMsg
		if err := dec.Decode(&msg); err != nil {
			return
		}
		m.mu.Lock()
		mp := m.ps[msg.ID]
		m.mu.Unlock()
		if mp == nil {
			continue
		}
		var p *Participant
		wait := func() bool { // the client may answer before Join returned
			<-mp.ready
			p = mp.p
			return p != nil
		}
		switch msg.Op {
		case "pubOffer":
			go func() {
				if !wait() {
					return
				}
				ans, err := p.HandleOffer(msg.SDP)
				if err != nil {
					m.fail(fmt.Errorf("%s: HandleOffer: %w", msg.ID, err))
					return
				}
				m.send(memMsg{Op: "pubAnswer", ID: msg.ID, SDP: ans})
			}()
		case "answer":
			go func() {
				if !wait() {
					return
				}
				if err := p.HandleAnswer(msg.SDP); err != nil && !errors.Is(err, ErrClosed) {
					m.fail(fmt.Errorf("%s: HandleAnswer: %w", msg.ID, err))
				}
			}()
		case "cand":
			go func() {
				if !wait() {
					return
				}
				if err := p.AddCandidate(PC(msg.PC), *msg.Cand); err != nil && !errors.Is(err, ErrClosed) {
					m.fail(fmt.Errorf("%s: AddCandidate: %w", msg.ID, err))
				}
			}()
		case "recv":
			m.mu.Lock()
			m.recv[msg.ID]++
			m.mu.Unlock()
		}
	}
}

// join adds participant id to r, here and in the client process; n > 0
// publishes n audio tracks.
func (m *memParent) join(r *Room, id string, n int) {
	m.t.Helper()
	mp := &memPart{ready: make(chan struct{})}
	m.mu.Lock()
	m.ps[id] = mp
	m.mu.Unlock()
	m.send(memMsg{Op: "join", ID: id, N: n}) // before Join: the bridge may offer at once
	p, err := r.Join(id, ParticipantEvents{
		Candidate: func(pc PC, cand *webrtc.ICECandidateInit) {
			if cand != nil {
				m.send(memMsg{Op: "cand", ID: id, PC: int(pc), Cand: cand})
			}
		},
		Offer: func(sdp string) { m.send(memMsg{Op: "offer", ID: id, SDP: sdp}) },
	})
	mp.p = p
	close(mp.ready)
	if err != nil {
		m.t.Fatal(err)
	}
}

// waitReceiving waits until each participant of want receives its number
// of tracks.
func (m *memParent) waitReceiving(want map[string]int) {
	m.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m.mu.Lock()
		err := m.err
		missing := 0
		for id, n := range want {
			missing += max(0, n-m.recv[id])
		}
		m.mu.Unlock()
		if err != nil {
			m.t.Fatal(err)
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%d subscribed tracks still receive nothing", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *memParent) close() {
	m.mu.Lock()
	ps := m.ps
	m.ps = map[string]*memPart{}
	m.mu.Unlock()
	for _, mp := range ps {
		<-mp.ready
		if mp.p != nil {
			mp.p.Close()
		}
	}
	m.in.Close()
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
}

// memSample is the bridge process's heap in use and goroutine stacks
// after two collections.
type memSample struct {
	heap, stack uint64
	rss         int64 // VmRSS, bytes (0 where /proc is missing)
	goroutines  int
}

func sampleMem() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, rss: selfRSS(), goroutines: runtime.NumGoroutine()}
}

// selfRSS returns the process's resident set size from /proc, or 0.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// writeMemProfile writes the heap profile to $MESHMEET_MEM_PROFILE+suffix
// if that is set.
func writeMemProfile(t testing.TB, suffix string) {
	f := os.Getenv("MESHMEET_MEM_PROFILE")
	if f == "" {
		return
	}
	w, err := os.Create(f + suffix)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := pprof.Lookup("heap").WriteTo(w, 0); err != nil {
		t.Fatal(err)
	}
}

// measureMemPerTrack runs the two-room measurement with the given
// number of listeners per room.
func measureMemPerTrack(t testing.TB, listeners int) memResult {
	t.Helper()
	if os.Getenv("MESHMEET_MEM_PROFILE") != "" {
		runtime.MemProfileRate = 4096
	}
	b := startBridge(t)
	m := startMemClients(t)
	defer m.close()
	one := b.NewRoom("one", RoomEvents{})
	many := b.NewRoom("many", RoomEvents{})
	m.join(one, "one-talker", 1)
	m.join(many, "many-talker0", memTracks)
	m.join(many, "many-talker1", memTracks)
	m.waitReceiving(map[string]int{"many-talker0": memTracks, "many-talker1": memTracks})
	settle := func() { time.Sleep(3 * time.Second) }

	settle()
	s0 := sampleMem()
	want := map[string]int{}
	for i := 0; i < listeners; i++ {
		id := fmt.Sprintf("one-l%d", i)
		m.join(one, id, 0)
		want[id] = 1
	}
	m.waitReceiving(want)
	settle()
	s1 := sampleMem()
	writeMemProfile(t, ".one")
	for i := 0; i < listeners; i++ {
		id := fmt.Sprintf("many-l%d", i)
		m.join(many, id, 0)
		want[id] = 2 * memTracks
	}
	m.waitReceiving(want)
	settle()
	s2 := sampleMem()
	writeMemProfile(t, "")

	d := func(a, b uint64) float64 { return float64(int64(b) - int64(a)) }
	tracks := listeners * (2*memTracks - 1)
	extraHeap := d(s1.heap, s2.heap) - d(s0.heap, s1.heap)
	extraStack := d(s1.stack, s2.stack) - d(s0.stack, s1.stack)
	extraGor := float64((s2.goroutines - s1.goroutines) - (s1.goroutines - s0.goroutines))
	r := memResult{
		tracks:        tracks,
		heapPerTrack:  extraHeap / float64(tracks),
		stackPerTrack: extraStack / float64(tracks),
		gorPerTrack:   extraGor / float64(tracks),
	}
	r.perTrack = r.heapPerTrack + r.stackPerTrack
	r.rssPerTrack = (float64(s2.rss-s1.rss) - float64(s1.rss-s0.rss)) / float64(tracks)
	r.perListener = (d(s0.heap, s1.heap)+d(s0.stack, s1.stack))/float64(listeners) - r.perTrack
	t.Logf("heap in use %d / %d / %d B, stacks %d / %d / %d B, goroutines %d / %d / %d (talkers; + %d listeners of 1 track; + %d listeners of %d tracks)",
		s0.heap, s1.heap, s2.heap, s0.stack, s1.stack, s2.stack, s0.goroutines, s1.goroutines, s2.goroutines, listeners, listeners, 2*memTracks)
	st := b.Stats()
	t.Logf("bridge stats %+v", st)
	return r
}

// BenchmarkMemPerSubscribedTrack reports the bridge's memory per
// subscribed track with 30 listeners in each room (63 participants, 450
// subscribed tracks of difference). Run it with -benchtime=1x: it measures
// once, whatever b.N.
func BenchmarkMemPerSubscribedTrack(b *testing.B) {
	r := measureMemPerTrack(b, 30)
	b.Log(r)
	b.ReportMetric(r.perTrack, "B/track")
	b.ReportMetric(r.heapPerTrack, "heap-B/track")
	b.ReportMetric(r.stackPerTrack, "stack-B/track")
	b.ReportMetric(r.gorPerTrack, "goroutines/track")
	b.ReportMetric(r.perListener, "B/listener")
	b.ReportMetric(r.rssPerTrack, "rss-B/track")
}

// TestMemPerSubscribedTrack fails when a subscribed track costs the bridge
// far more than the 64 KB target (memFailAbove: memory measurements are
// noisy, the margin is wide; the benchmark gives the figure).
func TestMemPerSubscribedTrack(t *testing.T) {
	if testing.Short() {
		t.Skip("63 pion participants; skipped in -short")
	}
	r := measureMemPerTrack(t, 30)
	t.Log(r)
	if r.perTrack > memFailAbove*1024 {
		t.Errorf("%.1f KB per subscribed track; the target is %d KB", r.perTrack/1024, memTargetKB)
	}
}

// TestMemClients is the client side of the memory measurement, run as
// the child process of measureMemPerTrack: pion clients driven by the
// messages on fd 3, answering on fd 4.
func TestMemClients(t *testing.T) {
	if os.Getenv(memChildEnv) == "" {
		t.Skip("the client process of TestMemPerSubscribedTrack")
	}
	in, out := os.NewFile(3, "in"), os.NewFile(4, "out")
	api := clientAPI(t)
	var encMu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(msg memMsg) {
		encMu.Lock()
		defer encMu.Unlock()
		_ = enc.Encode(msg)
	}
	clients := map[string]*memClient{}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	dec := json.NewDecoder(bufio.NewReader(in))
	for {
		var msg memMsg
		if err := dec.Decode(&msg); err != nil {
			return
		}
		if msg.Op == "join" {
			c, err := newMemClient(api, msg.ID, send)
			if err != nil {
				t.Fatal(err)
			}
			clients[msg.ID] = c
			if msg.N > 0 {
				c.do(func() { c.publish(msg.N) })
			}
			continue
		}
		c := clients[msg.ID]
		if c == nil {
			continue
		}
		switch msg.Op {
		case "pubAnswer":
			c.do(func() {
				if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: msg.SDP}); err != nil {
					fmt.Fprintf(os.Stderr, "%s: set pub answer: %v\n", c.id, err)
				}
				c.flushEarly()
			})
		case "offer":
			c.do(func() { c.answer(msg.SDP) })
		case "cand":
			c.do(func() {
				pc := c.pcs[msg.PC]
				if pc.RemoteDescription() == nil {
					c.early[msg.PC] = append(c.early[msg.PC], *msg.Cand)
					return
				}
				_ = pc.AddICECandidate(*msg.Cand)
			})
		}
	}
}

// memClient is one participant in the client process. Its ops run one at
// a time on its loop.
type memClient struct {
	id    string
	pub   *webrtc.PeerConnection
	sub   *webrtc.PeerConnection
	pcs   [2]*webrtc.PeerConnection // by PC
	early [2][]webrtc.ICECandidateInit
	send  func(memMsg)
	ops   chan func()
	done  chan struct{}
	wg    sync.WaitGroup
}

func newMemClient(api *webrtc.API, id string, send func(memMsg)) (*memClient, error) {
	c := &memClient{id: id, send: send, ops: make(chan func(), 64), done: make(chan struct{})}
	var err error
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	c.pcs = [2]*webrtc.PeerConnection{c.pub, c.sub}
	for i, pc := range c.pcs {
		which := i
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				init := cand.ToJSON()
				send(memMsg{Op: "cand", ID: id, PC: which, Cand: &init})
			}
		})
	}
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		if _, _, err := tr.Read(buf); err != nil {
			return
		}
		send(memMsg{Op: "recv", ID: id})
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case f := <-c.ops:
				f()
			case <-c.done:
				return
			}
		}
	}()
	return c, nil
}

func (c *memClient) do(f func()) {
	select {
	case c.ops <- f:
	case <-c.done:
	}
}

func (c *memClient) flushEarly() {
	for i, pc := range c.pcs {
		if pc.RemoteDescription() == nil {
			continue
		}
		for _, cand := range c.early[i] {
			_ = pc.AddICECandidate(cand)
		}
		c.early[i] = nil
	}
}

// publish adds n Opus tracks, offers them and sends on each every
// memInterval.
func (c *memClient) publish(n int) {
	var tracks []*webrtc.TrackLocalStaticRTP
	for i := 0; i < n; i++ {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, fmt.Sprintf("a%d", i), c.id)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", c.id, err)
			return
		}
		s, err := c.pub.AddTrack(tr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: add track: %v\n", c.id, err)
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				if _, _, err := s.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		tracks = append(tracks, tr)
	}
	offer, err := c.pub.CreateOffer(nil)
	if err == nil {
		err = c.pub.SetLocalDescription(offer)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: pub offer: %v\n", c.id, err)
		return
	}
	c.send(memMsg{Op: "pubOffer", ID: c.id, SDP: offer.SDP})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(memInterval)
		defer tick.Stop()
		var seq uint16
		for {
			select {
			case <-c.done:
				return
			case <-tick.C:
			}
			seq++
			for _, tr := range tracks {
				pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: audioPayload(uint32(seq))}
				_ = tr.WriteRTP(&pkt)
			}
		}
	}()
}

// answer answers a subscriber offer from the bridge.
func (c *memClient) answer(offer string) {
	waitTransportStarted(c.sub)
	err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
	var ans webrtc.SessionDescription
	if err == nil {
		ans, err = c.sub.CreateAnswer(nil)
	}
	if err == nil {
		err = c.sub.SetLocalDescription(ans)
	}
	if err != nil {
		if !errors.Is(err, webrtc.ErrConnectionClosed) { // the bridge closed it: the end
			fmt.Fprintf(os.Stderr, "%s: sub answer: %v\n", c.id, err)
		}
		return
	}
	c.flushEarly()
	c.send(memMsg{Op: "answer", ID: c.id, SDP: ans.SDP})
}

func (c *memClient) close() {
	close(c.done)
	_ = c.pub.Close()
	_ = c.sub.Close()
	c.wg.Wait()
}
