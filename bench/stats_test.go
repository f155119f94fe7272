package bench

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() int64
	}{
		{"uniform small", func() int64 { return rng.Int64N(60) }},
		{"uniform ms", func() int64 { return 1000 + rng.Int64N(50_000) }},
		{"exponential", func() int64 { return int64(rng.ExpFloat64() * 20_000) }},
		{"bimodal", func() int64 {
			if rng.IntN(10) == 0 {
				return 400_000 + rng.Int64N(1000)
			}
			return 500 + rng.Int64N(100)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			var xs []int64
			for range 20000 {
				v := tc.gen()
				h.Add(v)
				xs = append(xs, v)
			}
			slices.Sort(xs)
			for _, q := range []float64{0.5, 0.95, 0.99} {
				exact := float64(xs[int(math.Ceil(q*float64(len(xs))))-1])
				got := h.Quantile(q)
				// Bucket width is at most 1/32 of its value: half of it
				// either way, plus one for the exact region.
				if math.Abs(got-exact) > exact/32+1 {
					t.Errorf("q%.2f = %.1f, exact %.1f", q, got, exact)
				}
			}
			if h.Count() != 20000 {
				t.Errorf("count %d", h.Count())
			}
			if h.Quantile(1) != float64(xs[len(xs)-1]) {
				t.Errorf("q1 = %v, max %v", h.Quantile(1), xs[len(xs)-1])
			}
		})
	}
}

func TestHistogramExactAndMerge(t *testing.T) {
	var a, b Histogram
	for v := int64(0); v < 50; v++ {
		a.Add(v)
	}
	b.Add(-5) // counts as 0
	b.Add(10_000_000)
	a.Merge(&b)
	if a.Count() != 52 {
		t.Fatalf("count %d", a.Count())
	}
	if got := a.Quantile(0.5); got != 24 {
		t.Errorf("median %v, want 24 (exact below 64)", got)
	}
	s := a.SummaryMS()
	if s.Max != 10_000 {
		t.Errorf("max %v ms, want 10000", s.Max)
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.SummaryMS() != (Summary{}) {
		t.Error("empty histogram is not zero")
	}
	// Every bucket's midpoint maps back to the bucket.
	for i := range histBuckets - 100 {
		v := histValue(i)
		if got := histIndex(uint64(v)); got != i {
			t.Fatalf("bucket %d: midpoint %v maps to %d", i, v, got)
		}
	}
}

func TestSummarize(t *testing.T) {
	var xs []float64
	for i := 1; i <= 100; i++ {
		xs = append(xs, float64(101-i))
	}
	s := summarize(xs)
	want := Summary{Count: 100, Mean: 50.5, P50: 50, P95: 95, P99: 99, Max: 100}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if summarize(nil) != (Summary{}) {
		t.Error("empty sample")
	}
	if s := summarize([]float64{7}); s.P50 != 7 || s.P99 != 7 {
		t.Errorf("one value: %+v", s)
	}
}

func TestLossCounter(t *testing.T) {
	for _, tc := range []struct {
		name           string
		seqs           []uint32
		restartBefore  int // index before which restart() is called; -1: never
		wantExp, wantR uint64
		wantDup        uint64
	}{
		{"none lost", []uint32{10, 11, 12, 13}, -1, 4, 4, 0},
		{"gap", []uint32{10, 11, 15, 16}, -1, 7, 4, 0},
		{"reordered", []uint32{10, 12, 11, 13}, -1, 4, 4, 0},
		{"duplicate (retransmission)", []uint32{10, 11, 11, 12}, -1, 3, 3, 1},
		{"late fill of a gap", []uint32{10, 14, 11, 12, 13}, -1, 5, 5, 0},
		{"before the first", []uint32{10, 11, 8}, -1, 4, 3, 0},
		{"layer switch away and back", []uint32{1, 2, 3, 100, 101}, 3, 5, 5, 0},
		{"huge jump", []uint32{1, 2, 10_000, 10_001}, -1, 10_001, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l lossCounter
			for i, s := range tc.seqs {
				if i == tc.restartBefore {
					l.restart()
				}
				l.add(s)
			}
			exp, got := l.totals()
			if exp != tc.wantExp || got != tc.wantR || l.dup != tc.wantDup {
				t.Errorf("expected %d received %d dup %d; want %d %d %d", exp, got, l.dup, tc.wantExp, tc.wantR, tc.wantDup)
			}
		})
	}
	// A long stream: the window slides without mistaking packets for
	// duplicates of those lossWindow earlier.
	var long lossCounter
	for s := uint32(0); s < 3*lossWindow+7; s++ {
		if s%1000 != 999 { // one in a thousand lost
			long.add(s)
		}
	}
	if exp, got := long.totals(); exp != 3*lossWindow+7 || got != exp-12 || long.dup != 0 {
		t.Errorf("long stream: expected %d received %d dup %d", exp, got, long.dup)
	}
	// Too late to count: stays lost.
	var l lossCounter
	l.add(0)
	l.add(lossWindow + 10)
	if l.add(1) {
		t.Error("a packet older than the window was counted")
	}
	if exp, got := l.totals(); exp != lossWindow+11 || got != 2 {
		t.Errorf("expected %d received %d", exp, got)
	}
}

func TestJitter(t *testing.T) {
	var j jitter
	// Constant transit: no jitter.
	for i := range 100 {
		sent := int64(i) * 20e6
		j.add(sent, sent+5e6)
	}
	if j.meanMS() != 0 {
		t.Errorf("constant delay: jitter %v", j.meanMS())
	}
	// Transit alternating 0 and 10 ms: D is always 10 ms, so J converges
	// to 10 ms.
	var k jitter
	for i := range 2000 {
		sent := int64(i) * 20e6
		k.add(sent, sent+int64(i%2)*10e6)
	}
	if math.Abs(k.j/1e6-10) > 0.01 {
		t.Errorf("alternating delay: J = %v ms, want 10", k.j/1e6)
	}
}

func TestFreezes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	from, to := t0.Add(time.Second), t0.Add(11*time.Second)
	frames := func(f *freezes, start, end time.Time, every time.Duration) {
		for ts := start; ts.Before(end); ts = ts.Add(every) {
			f.frame(ts, from, to)
		}
	}
	t.Run("smooth", func(t *testing.T) {
		var f freezes
		frames(&f, t0, to, 33*time.Millisecond)
		if c, d := f.finish(from, to); c != 0 || d != 0 {
			t.Errorf("%d freezes, %v", c, d)
		}
	})
	t.Run("one gap", func(t *testing.T) {
		var f freezes
		frames(&f, t0, t0.Add(4*time.Second), 33*time.Millisecond)
		frames(&f, t0.Add(6*time.Second), to, 33*time.Millisecond)
		c, d := f.finish(from, to)
		if c != 1 || d < 2*time.Second || d > 2100*time.Millisecond {
			t.Errorf("%d freezes, %v; want 1, ~2s", c, d)
		}
	})
	t.Run("short gaps are not freezes", func(t *testing.T) {
		var f freezes
		frames(&f, t0, to, 400*time.Millisecond)
		if c, _ := f.finish(from, to); c != 0 {
			t.Errorf("%d freezes", c)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		var f freezes
		frames(&f, t0, t0.Add(3*time.Second), 33*time.Millisecond)
		c, d := f.finish(from, to)
		if c != 1 || d < 8*time.Second {
			t.Errorf("%d freezes, %v; want 1, ~8s", c, d)
		}
	})
	t.Run("rendered before, nothing in the window", func(t *testing.T) {
		var f freezes
		frames(&f, t0, from, 33*time.Millisecond)
		c, d := f.finish(from, to)
		if c != 1 || d != 10*time.Second {
			t.Errorf("%d freezes, %v; want 1, 10s", c, d)
		}
	})
	t.Run("gap across the window start", func(t *testing.T) {
		var f freezes
		frames(&f, t0, t0.Add(500*time.Millisecond), 33*time.Millisecond)
		frames(&f, from.Add(2*time.Second), to, 33*time.Millisecond)
		c, d := f.finish(from, to)
		// Only the part inside the window counts.
		if c != 1 || d < 2*time.Second || d > 2040*time.Millisecond {
			t.Errorf("%d freezes, %v; want 1, 2s", c, d)
		}
	})
}

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (meshmeet (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 130 0 0 20 0 12 0 98765 1234567 890 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	if err != nil || math.Abs(cpu-3.8) > 1e-9 {
		t.Errorf("cpu %v, %v; want 3.8 s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
	status := []byte("Name:\tmeshmeet\nVmPeak:\t  9999 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n")
	if rss := parseStatusRSS(status); rss != 51200*1024 {
		t.Errorf("rss %d", rss)
	}
	snmp := []byte("Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 100 2 7 90 5 0\nUdpLite: InDatagrams\nUdpLite: 0\n")
	if n, err := parseSNMPUDP(snmp, "RcvbufErrors"); err != nil || n != 5 {
		t.Errorf("RcvbufErrors %d, %v", n, err)
	}
	if _, err := parseSNMPUDP(snmp, "Nope"); err == nil {
		t.Error("unknown field found")
	}
	udp := []byte(`   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 3466: 0100007F:8681 00000000:0000 07 00000000:00002080 00:00000000 00000000     0        0 402968 2 00000000956478c0 2126
 3467: 00000000:8681 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 402969 2 00000000956478c1 4
 3468: 0100007F:8682 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 402970 2 00000000956478c2 99
`)
	if n := parseUDPSocketDrops(udp, 0x8681); n != 2130 {
		t.Errorf("socket drops %d, want 2130", n)
	}
	if _, err := readProc(0); err != nil {
		t.Errorf("own /proc: %v", err)
	}
}

func TestScenarioFiles(t *testing.T) {
	base, err := Preset("meeting")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseScenario([]byte("rooms: 5\nduration: 20s\nlink_delay:\n  local-eu: 30ms\nregions: [local, eu]\n"), base)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rooms != 5 || s.Duration != 20*time.Second || s.Publishers != 4 || s.LinkDelay["local-eu"] != 30*time.Millisecond {
		t.Errorf("got %+v", s)
	}
	if err := s.withDefaults().Validate(); err != nil {
		t.Errorf("valid scenario refused: %v", err)
	}
	// JSON is YAML.
	if s, err := ParseScenario([]byte(`{"subscribers": 3, "layout": 1}`), base); err != nil || s.Subscribers != 3 || s.Layout != 1 {
		t.Errorf("json: %+v, %v", s, err)
	}
	if _, err := ParseScenario([]byte("romos: 3\n"), base); err == nil || !strings.Contains(err.Error(), "romos") {
		t.Errorf("unknown field: %v", err)
	}
	for _, bad := range []Scenario{
		{Rooms: 1, Subscribers: 3},            // no publisher
		{Rooms: 1, Publishers: 1, Layout: -1}, // layout
		{Rooms: 1, Publishers: 1, Talk: 2},    // talk
		{Rooms: 1, Publishers: 1, Churn: -1},  // churn
		{Rooms: 1, Publishers: 1, VideoKbps: []int{1, 2}},
		{Rooms: 1, Publishers: 1, LinkDelay: map[string]time.Duration{"eu-us": time.Millisecond}}, // unknown regions
	} {
		if err := bad.withDefaults().Validate(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	links, err := ParseLinks("eu-us=40ms, us-ap=60ms")
	if err != nil || links["eu-us"] != 40*time.Millisecond || links["us-ap"] != 60*time.Millisecond {
		t.Errorf("links %v, %v", links, err)
	}
	if _, err := ParseLinks("eu-us"); err == nil {
		t.Error("link without delay accepted")
	}
	for _, n := range PresetNames() {
		p, err := Preset(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.withDefaults().Validate(); err != nil {
			t.Errorf("preset %s: %v", n, err)
		}
	}
	// A report's scenario (JSON) runs again as a scenario file.
	g, _ := Preset("global")
	g.Duration = 90 * time.Second
	j, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"duration":"1m30s"`) {
		t.Errorf("durations not in file form: %s", j)
	}
	back, err := ParseScenario(j, Scenario{})
	j2, _ := json.Marshal(back)
	if err != nil || string(j2) != string(j) || back.Duration != g.Duration || back.LinkDelay["eu-ap"] != 110*time.Millisecond {
		t.Errorf("round trip: %s, %v; want %s", j2, err, j)
	}
	if _, err := Preset("nope"); err == nil {
		t.Error("unknown preset accepted")
	}
}

// TestDecoderModel: frames render in order from a keyframe; a missing
// frame holds the later ones until NACK repairs it or a keyframe comes, and
// a stream broken for long enough asks for a keyframe.
func TestDecoderModel(t *testing.T) {
	r := &runner{}
	t0 := time.Unix(1000, 0)
	r.fromNS.Store(t0.UnixNano())
	r.toNS.Store(t0.Add(time.Hour).UnixNano())
	s := &stream{sub: &participant{run: r}, frames: map[uint64]*framePackets{}, pending: map[uint32]bool{}}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	s.complete(at(0), 0, false) // no keyframe yet: not rendered
	if s.rendered || !s.first.IsZero() {
		t.Fatal("rendered before a keyframe")
	}
	s.complete(at(10), 1, true)
	s.complete(at(20), 2, false)
	if s.last != 2 || !s.first.Equal(at(10)) {
		t.Fatalf("last %d first %v", s.last, s.first)
	}
	// Frame 3 is missing: 4 and 5 wait.
	s.complete(at(40), 4, false)
	s.complete(at(50), 5, false)
	if s.last != 2 || s.broken.IsZero() {
		t.Fatalf("rendered past a missing frame: last %d", s.last)
	}
	if s.wantPLI(at(100)) {
		t.Error("PLI before NACK had its chance")
	}
	// NACK repairs frame 3: 3, 4 and 5 render at once.
	s.complete(at(120), 3, false)
	if s.last != 5 || !s.broken.IsZero() || len(s.pending) != 0 {
		t.Fatalf("after repair: last %d broken %v pending %v", s.last, s.broken, s.pending)
	}
	// Frame 6 is lost for good: a PLI goes out, once per 500 ms, and the
	// keyframe restarts rendering.
	s.complete(at(200), 7, false)
	if !s.wantPLI(at(500)) || s.wantPLI(at(700)) || !s.wantPLI(at(1001)) {
		t.Error("PLI timing")
	}
	s.complete(at(1100), 9, true)
	if s.last != 9 || !s.broken.IsZero() || len(s.pending) != 0 || s.plis != 2 {
		t.Fatalf("after keyframe: last %d broken %v pending %v plis %d", s.last, s.broken, s.pending, s.plis)
	}
	// The freeze: nothing rendered from 120 ms (frame 5) to 1100 ms.
	c, d := s.frz.finish(t0, at(1100))
	if c != 1 || d != 980*time.Millisecond {
		t.Errorf("freezes %d, %v", c, d)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 5.24288e+07
meshmeet_bridge_forwarded_packets_total 123456
meshmeet_bridge_dropped_packets_total{reason="queue_full"} 7
meshmeet_bridge_dropped_packets_total{reason="nack_miss"} 0
meshmeet_participants 4
meshmeet_relay_bytes_total{direction="in"} 900
meshmeet_relay_bytes_total{direction="out"} 4096
`
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	if err != nil || !m.ok || m.cpu != 12.5 || m.rss != 52428800 || m.forwarded != 123456 || m.drops["queue_full"] != 7 || m.drops["nack_miss"] != 0 {
		t.Errorf("%+v, %v", m, err)
	}
	if !m.relaySeen || m.relayOut != 4096 {
		t.Errorf("relay bytes out: seen %v, %v; want 4096", m.relaySeen, m.relayOut)
	}
	if m, _ := parseMetrics(bufio.NewScanner(strings.NewReader("garbage here\n"))); m.ok {
		t.Error("garbage parsed as metrics")
	}
}
