package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Sample is one second of the run, for the progress line and the plots.
type Sample struct {
	T           float64   `json:"t"` // seconds since the run started
	Phase       string    `json:"phase"`
	Joined      int64     `json:"joined"`
	RxPPS       float64   `json:"rx_pps"`       // packets/s received by all participants
	RxKbps      float64   `json:"rx_kbps"`      // payload kbit/s received
	GenCores    float64   `json:"gen_cores"`    // the generator's CPU, in cores
	NodeCores   []float64 `json:"node_cores"`   // each local node's CPU, in cores
	NodeRSSMB   []float64 `json:"node_rss_mb"`  // each local node's resident memory
	Errors      int64     `json:"errors"`       // errors so far
	MachineBusy float64   `json:"machine_busy"` // whole-machine CPU busy share, 0..1
	rxPackets   int64     // cumulative, for the rates
	rxBytes     int64     // cumulative
	gen         procSample
	nodes       []procSample
	busy, tot   uint64
	udpDrops    int64 // kernel UDP receive-buffer drops, cumulative
	at          time.Time
}

// sampler reads counters and /proc once a second.
type sampler struct {
	r *runner

	// mu guards the following fields.
	mu       sync.Mutex
	samples  []Sample
	baseline Sample // before anyone joined
	winStart *Sample
	winEnd   *Sample
	tty      bool
}

func newSampler(r *runner) *sampler {
	s := &sampler{r: r}
	if f, ok := r.p.Progress.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			s.tty = true
		}
	}
	return s
}

// read takes one reading.
func (s *sampler) read() Sample {
	r := s.r
	now := time.Now()
	x := Sample{
		at:        now,
		T:         round3(now.Sub(r.start).Seconds()),
		Joined:    r.joined.Load() - r.churned.Load(),
		Errors:    r.errors.Load() + r.joinFailed.Load(),
		rxPackets: r.rxPackets.Load(),
		rxBytes:   r.rxBytes.Load(),
	}
	x.gen, _ = readProc(0)
	x.busy, x.tot, _ = readMachineCPU()
	x.udpDrops, _ = readUDPRcvbufErrors()
	for _, t := range r.targets {
		var ps procSample
		if pid := t.pid(); pid > 0 {
			ps, _ = readProc(pid)
			ps.udpDrops, _ = readUDPSocketDrops(t.rtcPort)
		}
		if t.MetricsURL != "" {
			ps.m, _ = scrapeMetrics(context.Background(), t.MetricsURL)
			if t.pid() == 0 && ps.m.ok {
				// A remote node: its cost comes from its metrics.
				ps.CPU, ps.RSS = ps.m.cpu, int64(ps.m.rss)
			}
		}
		x.nodes = append(x.nodes, ps)
	}
	from, to := r.window()
	switch {
	case now.Before(from):
		x.Phase = "ramp"
	case now.Before(to):
		x.Phase = "steady"
	default:
		x.Phase = "end"
	}
	return x
}

// sample takes a reading, derives rates from the previous one and prints
// the progress line.
func (s *sampler) sample() Sample {
	x := s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		s.baseline = x
	} else {
		prev := s.samples[len(s.samples)-1]
		dt := x.at.Sub(prev.at).Seconds()
		if dt > 0 {
			x.RxPPS = round3(float64(x.rxPackets-prev.rxPackets) / dt)
			x.RxKbps = round3(float64(x.rxBytes-prev.rxBytes) * 8 / 1000 / dt)
			x.GenCores = round3((x.gen.CPU - prev.gen.CPU) / dt)
			if x.tot > prev.tot {
				x.MachineBusy = round3(float64(x.busy-prev.busy) / float64(x.tot-prev.tot))
			}
			for i, n := range x.nodes {
				x.NodeCores = append(x.NodeCores, round3((n.CPU-prev.nodes[i].CPU)/dt))
				x.NodeRSSMB = append(x.NodeRSSMB, round3(float64(n.RSS)/(1<<20)))
			}
		}
	}
	s.samples = append(s.samples, x)
	s.printLocked(x)
	return x
}

func (s *sampler) printLocked(x Sample) {
	w := s.r.p.Progress
	if w == nil || len(s.samples) < 2 {
		return
	}
	var cpu []string
	for _, c := range x.NodeCores {
		cpu = append(cpu, fmt.Sprintf("%.2f", c))
	}
	line := fmt.Sprintf("[%5.1fs %-6s] joined %d/%d  rx %.0f pkt/s %.1f Mbit/s  errors %d  gen cpu %.2f",
		x.T, x.Phase, x.Joined, s.r.planned(), x.RxPPS, x.RxKbps/1000, x.Errors, x.GenCores)
	if len(cpu) > 0 {
		line += "  node cpu " + strings.Join(cpu, " ")
	}
	if s.tty {
		fmt.Fprintf(w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(w, line)
	}
}

func (s *sampler) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if s.tty && s.r.p.Progress != nil {
				fmt.Fprintln(s.r.p.Progress)
			}
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *sampler) markWindow(time.Time) {
	x := s.read()
	s.mu.Lock()
	s.winStart = &x
	s.mu.Unlock()
}

func (s *sampler) markWindowEnd(time.Time) {
	x := s.read()
	s.mu.Lock()
	s.winEnd = &x
	s.mu.Unlock()
}

func (s *sampler) timeline() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) <= 1 {
		return nil
	}
	return append([]Sample(nil), s.samples[1:]...)
}

// planned is the number of participants the scenario asks for.
func (r *runner) planned() int { return r.scn.Rooms * r.scn.perRoom() }
