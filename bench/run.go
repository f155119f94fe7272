package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/bench/client"
)

// Params configure a run. The CLI maps its flags onto them one to one.
type Params struct {
	// Scenario is what to run (a preset, a file, flags).
	Scenario Scenario
	// URLs are nodes of a running cluster (http://host:port). Rooms are
	// dealt to them in turn. Exclusive with Local.
	URLs []string
	// MetricsURLs are the URLs' Prometheus endpoints (`serve
	// --metrics-addr`), in the same order; empty entries: none. Their CPU,
	// memory and bridge counters join the report.
	MetricsURLs []string
	// Local starts this many nodes on 127.0.0.1 and stops them after.
	Local int
	// Binary is the meshmeet binary for Local [os.Executable()].
	Binary string
	// NodeArgs are extra `serve` flags for local nodes.
	NodeArgs []string
	// MaxLoss fails the run when audio or video loss exceeds it (percent);
	// 0: no guard.
	MaxLoss float64
	// MaxP95Delay fails the run when the p95 one-way delay of audio or
	// video exceeds it; 0: no guard.
	MaxP95Delay time.Duration
	// Progress receives a status line every second; nil: none.
	Progress io.Writer
	// Logger logs the run's steps [slog.Default()]. Room names are never
	// logged.
	Logger *slog.Logger
	// Fault deliberately drops one publisher's media for a while (tests of
	// the loss and freeze measurements).
	Fault *Fault
	// Seed makes talk patterns and frame sizes repeatable; 0: random.
	Seed uint64
	// NoPin leaves a single local node and the generator unpinned (by
	// default, with two or more CPUs, the node runs alone on the last one
	// and the generator on the others) and skips the raw floor.
	NoPin bool
}

// Fault makes one publisher drop its packets, as a broken path would.
type Fault struct {
	// Publisher is the index of the video publisher (in join order).
	Publisher int
	// After is when the drop starts, from the start of the steady window.
	After time.Duration
	// For is how long it lasts.
	For time.Duration
	// Audio drops the publisher's audio too.
	Audio bool
}

// Errors.
var (
	// ErrGuardsFailed is returned with the report when the run broke
	// MaxLoss or MaxP95Delay.
	ErrGuardsFailed = errors.New("bench: guards failed")
)

// runner is the state of one run.
type runner struct {
	p       Params
	scn     Scenario
	log     *slog.Logger
	targets []*target
	layers  []client.SynthLayer
	seed    uint64
	start   time.Time

	roomNames []string // never logged
	pin       *pinPlan // a single local node's CPU; nil: not pinned

	fromNS, toNS atomic.Int64 // the steady window; MaxInt64 until it starts

	// mu guards the following fields.
	mu       sync.Mutex
	all      []*participant
	tags     map[uint32]*participant
	joinErrs []string

	joined, joinFailed, churned atomic.Int64
	errors, malformed           atomic.Int64
	rxPackets, rxBytes          atomic.Int64
	plis                        atomic.Int64 // keyframe requests subscribers sent
}

func (r *runner) window() (time.Time, time.Time) {
	return time.Unix(0, r.fromNS.Load()), time.Unix(0, r.toNS.Load())
}

func (r *runner) rx(n int) {
	r.rxPackets.Add(1)
	r.rxBytes.Add(int64(n))
}

func (r *runner) byTag(tag uint32) *participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tags[tag]
}

// settingEngine returns the participant's pion settings: nil (the
// client's default) unless it reaches its node over an emulated link.
func (r *runner) settingEngine(p *participant) (*webrtc.SettingEngine, error) {
	l, ok := r.scn.linkFor(p.region, r.targets[p.node].Region)
	if !ok {
		return nil, nil
	}
	return linkSettingEngine(l)
}

// Run runs a scenario and reports what the participants measured. It
// returns the report and ErrGuardsFailed when a guard broke; any other
// error means the run could not be done.
func Run(ctx context.Context, p Params) (*Report, error) {
	scn := p.Scenario.withDefaults()
	if err := scn.Validate(); err != nil {
		return nil, err
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "bench")
	r := &runner{p: p, scn: scn, log: log, tags: map[uint32]*participant{}, seed: p.Seed}
	if r.seed == 0 {
		r.seed = mrand.Uint64()
	}
	r.fromNS.Store(math.MaxInt64)
	r.toNS.Store(math.MaxInt64)
	for i, l := range client.BrowserLayers {
		l.Bitrate = scn.VideoKbps[i] * 1000
		r.layers = append(r.layers, l)
	}
	switch {
	case p.Local > 0 && len(p.URLs) > 0:
		return nil, errors.New("bench: give URLs or Local, not both")
	case p.Local > 0:
		bin := p.Binary
		if bin == "" {
			var err error
			if bin, err = os.Executable(); err != nil {
				return nil, err
			}
		}
		log.Info("starting local nodes", "nodes", p.Local)
		if p.Local == 1 && !p.NoPin {
			// One node: it gets a CPU of its own, the generator the
			// others, and the raw floor is measured on the node's CPU.
			if r.pin = planPin(); r.pin != nil {
				r.pin.pinGenerator()
				defer r.pin.unpin()
			}
		}
		lc, err := startLocal(ctx, bin, p.Local, scn.Regions, p.NodeArgs, scn.TURNOnly, func(a, b string) time.Duration {
			l, _ := scn.linkFor(a, b)
			return l.delay
		}, r.pin, log)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := lc.stop(); err != nil {
				log.Warn("stopping local nodes", "err", err)
			}
		}()
		r.targets = lc.nodes
	case len(p.URLs) > 0:
		for i, u := range p.URLs {
			t := &target{Name: fmt.Sprintf("node-%d", i+1), URL: strings.TrimRight(u, "/")}
			if i < len(p.MetricsURLs) {
				t.MetricsURL = p.MetricsURLs[i]
			}
			r.targets = append(r.targets, t)
		}
	default:
		return nil, errors.New("bench: give URLs or Local")
	}
	prefix := make([]byte, 6)
	rand.Read(prefix)
	for i := range scn.Rooms {
		r.roomNames = append(r.roomNames, fmt.Sprintf("bench-%s-%d", hex.EncodeToString(prefix), i))
	}
	if err := r.warmUp(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// warmUp joins and leaves a throwaway room on every node, so that join
// times measure joining, not a node that has just started (a node's first
// join is slower than the rest: first use of its directory connections and
// bridge).
func (r *runner) warmUp(ctx context.Context) error {
	var g errgroup.Group
	for _, t := range r.targets {
		g.Go(func() error {
			start := time.Now()
			deadline := start.Add(60 * time.Second)
			for {
				jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				c, err := client.Join(jctx, t.URL, fmt.Sprintf("bench-warmup-%d", mrand.Uint64()), client.Options{})
				cancel()
				if err == nil {
					lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					c.Leave(lctx)
					cancel()
					r.log.Info("node answers", "node", t.Name, "after", time.Since(start).Round(time.Millisecond))
					return nil
				}
				if ctx.Err() != nil || time.Now().After(deadline) {
					return fmt.Errorf("bench: node %s does not let anyone join: %w", t.Name, err)
				}
				if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// plan lists the participants in join order: rooms in turn, publishers
// first.
func (r *runner) plan() []*participant {
	s := r.scn
	var roles []role
	for range s.Publishers {
		roles = append(roles, roleAV)
	}
	for range s.AudioPublishers {
		roles = append(roles, roleAudio)
	}
	for range s.Subscribers {
		roles = append(roles, roleSub)
	}
	var out []*participant
	for i, ro := range roles {
		for room := range s.Rooms {
			p := r.newParticipant(room, ro)
			if s.Spread {
				p.region = s.Regions[i%len(s.Regions)]
			}
			if s.CrossNode {
				// Enter through the participant's own region's node:
				// the room spans the nodes over the relay.
				for n, t := range r.targets {
					if t.Region == p.region {
						p.node = n
						break
					}
				}
			}
			out = append(out, p)
		}
	}
	return out
}

func (r *runner) newParticipant(room int, ro role) *participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	tag := uint32(len(r.all) + 1)
	node := room % len(r.targets)
	p := &participant{run: r, tag: tag, room: room, node: node, region: r.targets[node].Region, role: ro, src: &client.Synth{Sender: tag}}
	r.all = append(r.all, p)
	r.tags[tag] = p
	return p
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	s := r.scn
	r.start = time.Now()
	mediaCtx, stopMedia := context.WithCancel(ctx)
	defer stopMedia()

	smp := newSampler(r)
	smp.sample() // baseline before anyone joins
	sctx, stopSampler := context.WithCancel(context.Background())
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); smp.loop(sctx) }()
	defer func() { stopSampler(); <-samplerDone }()

	// Ramp: one join every 1/JoinRate, each in its own goroutine.
	var joins errgroup.Group
	startJoin := func(p *participant) {
		joins.Go(func() error {
			p.start = time.Now()
			if err := p.join(mediaCtx); err != nil {
				r.joinFailed.Add(1)
				r.mu.Lock()
				if len(r.joinErrs) < 10 {
					r.joinErrs = append(r.joinErrs, err.Error())
				}
				r.mu.Unlock()
				return nil
			}
			r.joined.Add(1)
			return nil
		})
	}
	interval := time.Duration(float64(time.Second) / s.JoinRate)
	plan := r.plan()
	r.log.Info("ramping up", "participants", len(plan), "rooms", s.Rooms, "nodes", len(r.targets))
	tick := time.NewTicker(interval)
	for i, p := range plan {
		if i > 0 {
			select {
			case <-ctx.Done():
				tick.Stop()
				joins.Wait()
				r.leaveAll()
				return nil, ctx.Err()
			case <-tick.C:
			}
		}
		startJoin(p)
	}
	tick.Stop()
	joins.Wait()
	if r.joined.Load() == 0 {
		r.leaveAll()
		return nil, fmt.Errorf("bench: no participant could join: %s", strings.Join(r.joinErrs, "; "))
	}
	if err := sleepCtx(ctx, s.Settle); err != nil {
		r.leaveAll()
		return nil, err
	}

	// The steady window.
	from := time.Now()
	to := from.Add(s.Duration)
	r.toNS.Store(to.UnixNano())
	r.fromNS.Store(from.UnixNano())
	smp.markWindow(from)
	r.log.Info("steady window", "duration", s.Duration)
	var bg errgroup.Group
	wctx, stopWindow := context.WithDeadline(ctx, to)
	defer stopWindow()
	if s.Churn > 0 {
		bg.Go(func() error { r.churn(wctx, mediaCtx, &joins, startJoin); return nil })
	}
	if f := r.p.Fault; f != nil {
		bg.Go(func() error { r.fault(wctx, from, *f); return nil })
	}
	<-wctx.Done()
	bg.Wait()
	if ctx.Err() != nil {
		r.leaveAll()
		return nil, ctx.Err()
	}
	smp.markWindowEnd(time.Now())
	// Packets sent near the end are still on their way: wait for them
	// before stopping the sources.
	sleepCtx(ctx, 500*time.Millisecond)
	stopMedia()
	joins.Wait()
	rep := r.report(smp)
	r.reportFloor(rep)
	r.leaveAll()
	stopSampler()
	<-samplerDone
	rep.Timeline = smp.timeline()
	if len(rep.Guards.Failed) > 0 {
		return rep, ErrGuardsFailed
	}
	return rep, nil
}

// churn makes one participant leave every 60/Churn seconds and a fresh
// one of the same room and role join in its place.
func (r *runner) churn(ctx, mediaCtx context.Context, joins *errgroup.Group, startJoin func(*participant)) {
	every := time.Duration(float64(time.Minute) / r.scn.Churn)
	t := time.NewTicker(every)
	defer t.Stop()
	rng := mrand.New(mrand.NewPCG(r.seed, 7))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		var live []*participant
		for _, p := range r.all {
			p.mu.Lock()
			ok := p.c != nil && p.leftAt.IsZero()
			p.mu.Unlock()
			if ok {
				live = append(live, p)
			}
		}
		r.mu.Unlock()
		if len(live) == 0 {
			continue
		}
		old := live[rng.IntN(len(live))]
		old.leave()
		r.churned.Add(1)
		np := r.newParticipant(old.room, old.role)
		np.region = old.region
		startJoin(np)
	}
}

// fault drops a publisher's media from from+After for For.
func (r *runner) fault(ctx context.Context, from time.Time, f Fault) {
	var pub *participant
	r.mu.Lock()
	n := 0
	for _, p := range r.all {
		if p.role == roleAV {
			if n == f.Publisher {
				pub = p
				break
			}
			n++
		}
	}
	r.mu.Unlock()
	if pub == nil {
		r.log.Warn("fault: no such publisher", "index", f.Publisher)
		return
	}
	if sleepCtx(ctx, time.Until(from.Add(f.After))) != nil {
		return
	}
	pub.src.Drop.Store(true)
	pub.src.DropAudio.Store(f.Audio)
	sleepCtx(ctx, f.For)
	pub.src.Drop.Store(false)
	pub.src.DropAudio.Store(false)
}

// leaveAll makes every participant leave, a few at a time.
func (r *runner) leaveAll() {
	r.mu.Lock()
	all := append([]*participant(nil), r.all...)
	r.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(16)
	for _, p := range all {
		g.Go(func() error { p.leave(); return nil })
	}
	g.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// genCores is how many cores the generator may use.
func genCores() int { return min(runtime.GOMAXPROCS(0), runtime.NumCPU()) }
