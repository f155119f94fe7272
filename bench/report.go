package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
)

// Report is every figure of a run. Durations are in milliseconds, rates
// per second, sizes in the unit their name says. Media figures count only
// packets sent within the steady window.
type Report struct {
	Scenario Scenario  `json:"scenario"`
	Started  time.Time `json:"started"`
	// WindowSeconds is the length of the steady window.
	WindowSeconds float64 `json:"window_seconds"`
	Target        string  `json:"target"`

	Participants ParticipantCounts `json:"participants"`

	Join       Summary `json:"join_ms"`        // join sent → welcome
	Connect    Summary `json:"connect_ms"`     // join sent → first PeerConnection connected
	FirstFrame Summary `json:"first_frame_ms"` // the later of subscriber join and publisher start → first complete keyframe
	FirstAudio Summary `json:"first_audio_ms"` // same → first audio packet

	AudioDelay Summary `json:"audio_delay_ms"` // one-way, end to end
	VideoDelay Summary `json:"video_delay_ms"`
	// DelayByPath splits the end-to-end delay by the nodes on the way
	// ("bench-1": publisher and subscriber on that node, one hop).
	DelayByPath map[string]Summary `json:"delay_by_path_ms"`

	AudioLoss Loss `json:"audio_loss"`
	VideoLoss Loss `json:"video_loss"`

	AudioJitter Summary `json:"audio_jitter_ms"` // per-stream mean RFC 3550 jitter
	VideoJitter Summary `json:"video_jitter_ms"`

	Freezes Freezes `json:"freezes"`
	// LastNPaused is how much of the shown videos the room's last-N
	// paused (the server's forwarding messages): not loss, not freezes.
	LastNPaused LastNPaused `json:"lastn_paused"`

	Layers []LayerFigures `json:"layers"`

	// ForwardedPPS is packets/s received by all subscribers: what the
	// bridges forwarded.
	ForwardedPPS  float64 `json:"forwarded_pps"`
	ForwardedKbps float64 `json:"forwarded_kbps"`
	// InterBridgeBytes is what the nodes' relays sent to other bridges in
	// the window (sum of meshmeet_relay_bytes_total{direction="out"}
	// deltas); null when no node exports that counter.
	InterBridgeBytes *int64 `json:"inter_bridge_bytes"`

	Nodes []NodeFigures `json:"nodes"`
	// CPUPerPacketUS is the nodes' CPU (µs) per forwarded packet; null for
	// remote nodes.
	CPUPerPacketUS *float64 `json:"cpu_per_packet_us"`
	// MemPerParticipantKB is the nodes' resident memory growth per
	// participant; null for remote nodes.
	MemPerParticipantKB *float64 `json:"mem_per_participant_kb"`
	// CPUPerBridgePacketUS is the nodes' CPU (µs) per packet their
	// bridges counted as forwarded (meshmeet_bridge_forwarded_packets_total
	// deltas over the window); null without local nodes that serve metrics.
	CPUPerBridgePacketUS *float64 `json:"cpu_per_bridge_packet_us"`
	// Floor is the raw loopback UDP cost measured on the node's CPU after
	// the window (one pinned local node only); null otherwise.
	Floor *Floor `json:"floor,omitempty"`

	Generator Generator `json:"generator"`

	Errors      int64    `json:"errors"`
	ErrorSample []string `json:"error_sample,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	Guards      Guards   `json:"guards"`

	// DelayHistogram holds the delay distributions for plots: bucket
	// midpoints in ms and counts, by kind.
	DelayHistogram map[string][][2]float64 `json:"delay_histogram"`
	Timeline       []Sample                `json:"timeline"`
}

// ParticipantCounts counts participants.
type ParticipantCounts struct {
	Planned int   `json:"planned"`
	Joined  int64 `json:"joined"`
	Failed  int64 `json:"failed"`
	Churned int64 `json:"churned"` // left and replaced during the window
}

// Loss is packets expected and received, from the Stamps' sequence numbers.
type Loss struct {
	Expected uint64  `json:"expected"`
	Received uint64  `json:"received"`
	Percent  float64 `json:"percent"`
}

// Freezes are gaps over 500 ms between rendered frames of a subscribed
// video, within the steady window.
type Freezes struct {
	Streams       int     `json:"streams"`        // subscribed videos
	Frozen        int     `json:"frozen_streams"` // with at least one freeze
	Count         int     `json:"count"`
	TotalSeconds  float64 `json:"total_seconds"`
	PerMinute     float64 `json:"per_stream_minute"` // freezes per stream per minute
	NeverRendered int     `json:"never_rendered"`    // shown videos without a single frame
	// PLIs are the keyframe requests subscribers sent because a frame
	// stayed missing (the whole run).
	PLIs int64 `json:"plis"`
}

// LastNPaused counts the shown videos last-N paused in the window.
type LastNPaused struct {
	Streams      int     `json:"streams"`       // shown videos paused at least once
	TotalSeconds float64 `json:"total_seconds"` // paused time, summed over them
}

// LayerFigures is what subscribers received of one simulcast layer.
type LayerFigures struct {
	RID     string  `json:"rid"`
	Height  int     `json:"height"`
	Streams int     `json:"streams"`       // subscriptions that received mostly this layer
	Kbps    float64 `json:"kbps"`          // received by all subscribers
	PerSub  float64 `json:"kbps_per_sub"`  // per subscription on this layer
	SentKbp float64 `json:"sent_kbps_pub"` // what each publisher sends on it
}

// NodeFigures is one node's cost over the steady window (local nodes).
type NodeFigures struct {
	Name         string  `json:"name"`
	Region       string  `json:"region"`
	Participants int     `json:"participants"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	Cores        float64 `json:"cores"` // mean over the window
	RSSStartMB   float64 `json:"rss_start_mb"`
	RSSEndMB     float64 `json:"rss_end_mb"`
	// RTCSocketDrops are datagrams the node's media socket turned away in
	// the window because its receive buffer was full.
	RTCSocketDrops int64 `json:"rtc_socket_drops"`
	// From the node's metrics, when it serves them: packets its bridge
	// forwarded in the window, and the packets it did not deliver, by
	// reason (only reasons that happened).
	BridgeForwarded *float64           `json:"bridge_forwarded,omitempty"`
	BridgeDrops     map[string]float64 `json:"bridge_drops,omitempty"`
}

// Generator is the bench's own cost: when it is busy, the figures measure
// it rather than the cluster.
type Generator struct {
	CPUSeconds  float64 `json:"cpu_seconds"`
	Cores       float64 `json:"cores"`
	Busy        float64 `json:"busy"` // share of the cores it may use
	CoresUsable int     `json:"cores_usable"`
	PeakCores   float64 `json:"peak_cores"`   // busiest second of the window
	MachineBusy float64 `json:"machine_busy"` // whole machine, 0..1
	Bottleneck  bool    `json:"bottleneck"`
	// UDPRcvbufErrors are datagrams the kernel dropped in the window
	// because a socket's receive buffer was full (this machine, any
	// process): on loopback, loss usually comes from there.
	UDPRcvbufErrors int64 `json:"udp_rcvbuf_errors"`
	// SkippedAudio are audio packets the generator never sent because it
	// was starved of CPU for over 200 ms (the whole run).
	SkippedAudio uint64 `json:"skipped_audio"`
}

// Guards are the run's pass/fail limits.
type Guards struct {
	MaxLossPercent float64  `json:"max_loss_percent,omitempty"`
	MaxP95DelayMS  float64  `json:"max_p95_delay_ms,omitempty"`
	Failed         []string `json:"failed,omitempty"`
}

func lossOf(exp, got uint64) Loss {
	l := Loss{Expected: exp, Received: got}
	if exp > 0 && got < exp {
		l.Percent = round3(float64(exp-got) * 100 / float64(exp))
	}
	return l
}

// report gathers the figures; the sources have stopped. Each part of the
// report comes from one function: media from what the participants
// received, cost from the nodes' and the generator's samples at the
// window's edges, then errors and the guards, which read the media
// figures. The order of the warnings follows that of the parts.
func (r *runner) report(smp *sampler) *Report {
	from, to := r.window()
	rep := &Report{
		Scenario:      r.scn,
		Started:       r.start.UTC(),
		WindowSeconds: round3(to.Sub(from).Seconds()),
		DelayByPath:   map[string]Summary{},
		Participants: ParticipantCounts{
			Planned: r.planned(),
			Joined:  r.joined.Load(),
			Failed:  r.joinFailed.Load(),
			Churned: r.churned.Load(),
		},
	}
	if r.p.Local > 0 {
		rep.Target = fmt.Sprintf("local, %d node(s)", r.p.Local)
	} else {
		rep.Target = strings.Join(r.p.URLs, ",")
	}
	r.mu.Lock()
	all := append([]*participant(nil), r.all...)
	r.mu.Unlock()

	packets := r.reportMedia(rep, all, from, to)
	smp.mu.Lock()
	base, ws, we := smp.baseline, smp.winStart, smp.winEnd
	smp.mu.Unlock()
	if ws != nil && we != nil {
		r.reportNodes(rep, all, to, &base, ws, we, packets)
		r.reportGenerator(rep, all, smp, ws, we)
	}
	r.reportErrors(rep, all)
	r.reportGuards(rep)
	return rep
}

// mediaTotals adds up what subscribers received in the steady window.
type mediaTotals struct {
	join, connect, ttff, tfa, ajit, vjit []float64

	adelay, vdelay Histogram
	paths          map[string]*Histogram // by path name, see pathName

	aexp, agot, vexp, vgot uint64
	layerBytes             [3]uint64
	layerStreams           [3]int
	packets, bytes         uint64
}

// reportMedia fills the join, delay, loss, jitter, freeze, layer and
// forwarding figures from every participant's streams and returns the
// packets subscribers received (the nodes' forwarded packets).
func (r *runner) reportMedia(rep *Report, all []*participant, from, to time.Time) uint64 {
	m := &mediaTotals{paths: map[string]*Histogram{}}
	for _, p := range all {
		p.mu.Lock()
		if !p.welcomeAt.IsZero() {
			m.join = append(m.join, ms(p.welcomeAt.Sub(p.start)))
		}
		if !p.connected.IsZero() {
			m.connect = append(m.connect, ms(p.connected.Sub(p.start)))
		}
		streams := append([]*stream(nil), p.streams...)
		shown := maps.Clone(p.shownAt)
		pauses := map[string]pauseSpans{}
		for id, ps := range p.pauses {
			pauses[id] = slices.Clone(ps)
		}
		pstart, leftAt := p.start, p.leftAt
		p.mu.Unlock()

		// A subscription or a shown video ends with the window or when
		// its participant left, whichever came first.
		end := to
		if !leftAt.IsZero() && leftAt.Before(end) {
			end = leftAt
		}
		rendered := map[string]bool{}
		for _, s := range streams {
			s.mu.Lock()
			if m.addStream(r, p, s, from, end, &rep.Freezes) {
				rendered[s.trackID] = true
			}
			s.mu.Unlock()
		}
		// A shown video that never produced a frame is frozen for all of
		// the window it was shown in, but for the time last-N paused it.
		for id, at := range shown {
			start := maxTime(from, maxTime(at, pstart))
			paused := pauses[id].within(start, end)
			if paused > 0 {
				rep.LastNPaused.Streams++
				rep.LastNPaused.TotalSeconds += paused.Seconds()
			}
			if rendered[id] {
				continue
			}
			if unpaused := end.Sub(start) - paused; unpaused > 2*freezeWindow {
				f := &rep.Freezes
				f.NeverRendered++
				f.Streams++
				f.Frozen++
				f.Count++
				f.TotalSeconds += unpaused.Seconds()
			}
		}
	}
	m.fill(rep, r.layers, to.Sub(from).Seconds())
	rep.LastNPaused.TotalSeconds = round3(rep.LastNPaused.TotalSeconds)
	rep.Freezes.PLIs = r.plis.Load()
	return m.packets
}

// addStream adds one subscription of participant p, whose media counts
// until end, and its freezes within the window. It reports whether the
// subscription rendered a video frame. The caller holds s.mu.
func (m *mediaTotals) addStream(r *runner, p *participant, s *stream, from, end time.Time, frz *Freezes) bool {
	m.packets += s.packets
	path := r.pathName(p, s)
	if m.paths[path] == nil {
		m.paths[path] = &Histogram{}
	}
	m.paths[path].Merge(&s.delay)
	var exp, got uint64
	for i := range s.loss {
		e, g := s.loss[i].totals()
		exp += e
		got += g
	}
	if !s.video {
		m.adelay.Merge(&s.delay)
		m.aexp += exp
		m.agot += got
		m.bytes += s.bytes[0]
		if s.jit.n > 0 {
			m.ajit = append(m.ajit, s.jit.meanMS())
		}
		if !s.first.IsZero() && !s.start.IsZero() {
			m.tfa = append(m.tfa, ms(s.first.Sub(s.start)))
		}
		return false
	}
	m.vdelay.Merge(&s.delay)
	m.vexp += exp
	m.vgot += got
	if s.jit.n > 0 {
		m.vjit = append(m.vjit, s.jit.meanMS())
	}
	best := 0
	for i, b := range s.bytes {
		m.layerBytes[i] += b
		m.bytes += b
		if b > s.bytes[best] {
			best = i
		}
	}
	if s.packets > 0 {
		m.layerStreams[best]++
	}
	rendered := false
	if !s.first.IsZero() && !s.start.IsZero() {
		m.ttff = append(m.ttff, ms(s.first.Sub(s.start)))
		rendered = true
	}
	// Freezes of subscriptions that overlap the window.
	if !s.ended.IsZero() && s.ended.Before(end) {
		end = s.ended
	}
	if start := maxTime(from, s.start); start.Before(end) {
		c, d := s.frz.finish(start, end)
		frz.Streams++
		frz.Count += c
		frz.TotalSeconds += d.Seconds()
		if c > 0 {
			frz.Frozen++
		}
	}
	return rendered
}

// pathName names the nodes (and, when participants are spread over
// regions, the regions) a subscription's media crossed: "bench-1",
// "bench-1→bench-2" or "eu→bench-1→us".
func (r *runner) pathName(p *participant, s *stream) string {
	path := r.targets[p.node].Name
	if s.from != nil && s.from.node != p.node {
		path = r.targets[s.from.node].Name + "→" + path
	}
	if r.scn.Spread && s.from != nil {
		path = s.from.region + "→" + path + "→" + p.region
	}
	return path
}

// fill writes the totals into rep; secs is the window's length.
func (m *mediaTotals) fill(rep *Report, layers []client.SynthLayer, secs float64) {
	rep.Freezes.TotalSeconds = round3(rep.Freezes.TotalSeconds)
	if rep.Freezes.Streams > 0 && secs > 0 {
		rep.Freezes.PerMinute = round3(float64(rep.Freezes.Count) / float64(rep.Freezes.Streams) / (secs / 60))
	}
	rep.Join = summarize(m.join)
	rep.Connect = summarize(m.connect)
	rep.FirstFrame = summarize(m.ttff)
	rep.FirstAudio = summarize(m.tfa)
	rep.AudioDelay = m.adelay.SummaryMS()
	rep.VideoDelay = m.vdelay.SummaryMS()
	for k, h := range m.paths {
		if h.Count() > 0 {
			rep.DelayByPath[k] = h.SummaryMS()
		}
	}
	rep.AudioLoss = lossOf(m.aexp, m.agot)
	rep.VideoLoss = lossOf(m.vexp, m.vgot)
	rep.AudioJitter = summarize(m.ajit)
	rep.VideoJitter = summarize(m.vjit)
	rep.DelayHistogram = map[string][][2]float64{}
	for kind, h := range map[string]*Histogram{"audio": &m.adelay, "video": &m.vdelay} {
		v, c := h.Buckets()
		for i := range v {
			rep.DelayHistogram[kind] = append(rep.DelayHistogram[kind], [2]float64{round3(v[i] / 1000), float64(c[i])})
		}
	}
	if secs <= 0 {
		return
	}
	rep.ForwardedPPS = round3(float64(m.packets) / secs)
	rep.ForwardedKbps = round3(float64(m.bytes) * 8 / 1000 / secs)
	for i, l := range layers {
		lf := LayerFigures{RID: l.RID, Height: l.Height, Streams: m.layerStreams[i],
			Kbps: round3(float64(m.layerBytes[i]) * 8 / 1000 / secs), SentKbp: float64(l.Bitrate) / 1000}
		if lf.Streams > 0 {
			lf.PerSub = round3(lf.Kbps / float64(lf.Streams))
		}
		rep.Layers = append(rep.Layers, lf)
	}
}

// reportNodes fills each node's cost over the window from the samples at
// its edges (ws, we) and the baseline before the run, and the cost per
// forwarded packet and per participant of the nodes the bench can see.
func (r *runner) reportNodes(rep *Report, all []*participant, to time.Time, base, ws, we *Sample, packets uint64) {
	// Participants on each node at the end of the window.
	nodeParts := make([]int, len(r.targets))
	for _, p := range all {
		p.mu.Lock()
		if !p.welcomeAt.IsZero() && (p.leftAt.IsZero() || p.leftAt.After(to)) {
			nodeParts[p.node]++
		}
		p.mu.Unlock()
	}
	dt := we.at.Sub(ws.at).Seconds()
	var cpu, rssGrowth float64
	local := false
	for i, t := range r.targets {
		nf := NodeFigures{Name: t.Name, Region: t.Region, Participants: nodeParts[i]}
		if i < len(ws.nodes) && i < len(we.nodes) && we.nodes[i].m.ok && ws.nodes[i].m.ok {
			nf.BridgeForwarded, nf.BridgeDrops = bridgeDelta(ws.nodes[i].m, we.nodes[i].m)
			if ws.nodes[i].m.relaySeen && we.nodes[i].m.relaySeen {
				// Bytes the node's relay sent to other bridges in the
				// window; summed over nodes, each hop counts once.
				sent := int64(we.nodes[i].m.relayOut - ws.nodes[i].m.relayOut)
				if rep.InterBridgeBytes == nil {
					rep.InterBridgeBytes = new(int64)
				}
				*rep.InterBridgeBytes += sent
			}
			if len(nf.BridgeDrops) > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("node %s: its bridge dropped packets: %v", t.Name, nf.BridgeDrops))
			}
		}
		if (t.pid() > 0 || (i < len(we.nodes) && we.nodes[i].m.ok)) && i < len(ws.nodes) && i < len(we.nodes) && i < len(base.nodes) {
			local = true
			nf.CPUSeconds = round3(we.nodes[i].CPU - ws.nodes[i].CPU)
			nf.Cores = round3(nf.CPUSeconds / dt)
			nf.RSSStartMB = round3(float64(base.nodes[i].RSS) / (1 << 20))
			nf.RSSEndMB = round3(float64(we.nodes[i].RSS) / (1 << 20))
			nf.RTCSocketDrops = we.nodes[i].udpDrops - ws.nodes[i].udpDrops
			if nf.RTCSocketDrops > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("node %s: its media socket dropped %d datagrams for a full receive buffer", t.Name, nf.RTCSocketDrops))
			}
			cpu += we.nodes[i].CPU - ws.nodes[i].CPU
			rssGrowth += float64(we.nodes[i].RSS - base.nodes[i].RSS)
		}
		rep.Nodes = append(rep.Nodes, nf)
	}
	if !local {
		return
	}
	if packets > 0 {
		v := round3(cpu / float64(packets) * 1e6)
		rep.CPUPerPacketUS = &v
	}
	var fwd float64
	for _, nf := range rep.Nodes {
		if nf.BridgeForwarded != nil {
			fwd += *nf.BridgeForwarded
		}
	}
	if fwd > 0 {
		v := round3(cpu / fwd * 1e6)
		rep.CPUPerBridgePacketUS = &v
	}
	if n := r.joined.Load() - r.churned.Load(); n > 0 {
		v := round3(rssGrowth / 1024 / float64(n))
		rep.MemPerParticipantKB = &v
	}
}

// bridgeDelta returns what a node's bridge forwarded between two readings
// of its metrics, and what it dropped, by reason (only reasons that
// happened; nil for none).
func bridgeDelta(a, b nodeMetrics) (*float64, map[string]float64) {
	fwd := b.forwarded - a.forwarded
	var drops map[string]float64
	for reason, n := range b.drops {
		if d := n - a.drops[reason]; d > 0 {
			if drops == nil {
				drops = map[string]float64{}
			}
			drops[reason] = d
		}
	}
	return &fwd, drops
}

// reportGenerator fills the bench's own cost over the window and warns
// when the generator, not the cluster, may have limited the figures.
func (r *runner) reportGenerator(rep *Report, all []*participant, smp *sampler, ws, we *Sample) {
	g := &rep.Generator
	g.CPUSeconds = round3(we.gen.CPU - ws.gen.CPU)
	g.Cores = round3(g.CPUSeconds / we.at.Sub(ws.at).Seconds())
	g.CoresUsable = genCores()
	g.Busy = round3(g.Cores / float64(g.CoresUsable))
	if we.tot > ws.tot {
		g.MachineBusy = round3(float64(we.busy-ws.busy) / float64(we.tot-ws.tot))
	}
	g.UDPRcvbufErrors = we.udpDrops - ws.udpDrops
	for _, p := range all {
		g.SkippedAudio += p.src.Skipped.Load()
	}
	if g.SkippedAudio > 0 {
		g.Bottleneck = true
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the generator was starved of CPU: it skipped %d audio packets it could not send in time", g.SkippedAudio))
	}
	if g.UDPRcvbufErrors > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the kernel dropped %d UDP datagrams on this machine for full socket receive buffers during the window", g.UDPRcvbufErrors))
	}
	smp.mu.Lock()
	for _, x := range smp.samples {
		if x.Phase == "steady" {
			g.PeakCores = max(g.PeakCores, x.GenCores)
		}
	}
	smp.mu.Unlock()
	switch {
	case g.Busy > 0.9:
		g.Bottleneck = true
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the generator used %.0f%% of its %d core(s): it, not the cluster, may be the bottleneck", g.Busy*100, g.CoresUsable))
	case g.PeakCores > 0.9*float64(g.CoresUsable):
		g.Bottleneck = true
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the generator peaked at %.2f of its %d core(s) in one second: it may have been the bottleneck then", g.PeakCores, g.CoresUsable))
	}
	if g.MachineBusy > 0.9 && r.p.Local > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the machine was %.0f%% busy: generator and local nodes compete for it", g.MachineBusy*100))
	}
}

// reportErrors counts the errors and keeps a sample of up to 10 (each
// participant's first, then join failures), and warns of malformed
// packets and failed joins.
func (r *runner) reportErrors(rep *Report, all []*participant) {
	const maxSample = 10
	for _, p := range all {
		p.mu.Lock()
		if len(p.errs) > 0 && len(rep.ErrorSample) < maxSample {
			rep.ErrorSample = append(rep.ErrorSample, p.errs[0])
		}
		p.mu.Unlock()
	}
	rep.Errors = r.errors.Load() + r.joinFailed.Load()
	r.mu.Lock()
	for _, e := range r.joinErrs {
		if len(rep.ErrorSample) < maxSample {
			rep.ErrorSample = append(rep.ErrorSample, "join: "+e)
		}
	}
	r.mu.Unlock()
	if m := r.malformed.Load(); m > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d packets arrived without a valid stamp", m))
	}
	if rep.Participants.Failed > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d of %d participants failed to join", rep.Participants.Failed, rep.Participants.Joined+rep.Participants.Failed))
	}
}

// reportGuards checks the media figures against the run's limits.
func (r *runner) reportGuards(rep *Report) {
	gd := &rep.Guards
	if r.p.MaxLoss > 0 {
		gd.MaxLossPercent = r.p.MaxLoss
		for _, l := range []struct {
			kind string
			l    Loss
		}{{"audio", rep.AudioLoss}, {"video", rep.VideoLoss}} {
			if l.l.Percent > r.p.MaxLoss {
				gd.Failed = append(gd.Failed, fmt.Sprintf("%s loss %.3f%% > %.3f%%", l.kind, l.l.Percent, r.p.MaxLoss))
			}
		}
		if rep.AudioLoss.Expected+rep.VideoLoss.Expected == 0 {
			gd.Failed = append(gd.Failed, "no media was received in the steady window")
		}
	}
	if r.p.MaxP95Delay > 0 {
		lim := ms(r.p.MaxP95Delay)
		gd.MaxP95DelayMS = lim
		for _, d := range []struct {
			kind string
			s    Summary
		}{{"audio", rep.AudioDelay}, {"video", rep.VideoDelay}} {
			if d.s.P95 > lim {
				gd.Failed = append(gd.Failed, fmt.Sprintf("%s p95 delay %.1f ms > %.1f ms", d.kind, d.s.P95, lim))
			}
		}
	}
}

func ms(d time.Duration) float64 { return round3(float64(d) / 1e6) }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteJSONFile writes the report to a file.
func (rep *Report) WriteJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteTable writes the human summary.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pc := rep.Participants
	turnOnly := ""
	if rep.Scenario.TURNOnly {
		turnOnly = " (TURN only: all media through TURN)"
	}
	fmt.Fprintf(w, "scenario %s%s, target %s, steady window %.1f s\n", rep.Scenario.Name, turnOnly, rep.Target, rep.WindowSeconds)
	fmt.Fprintf(w, "participants: %d joined of %d, failed %d, churned %d, errors %d\n\n", pc.Joined, pc.Planned, pc.Failed, pc.Churned, rep.Errors)
	fmt.Fprintf(tw, "figure\tp50\tp95\tp99\tmax\tcount\n")
	row := func(name string, s Summary) {
		if s.Count == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t0\n", name)
			return
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%d\n", name, s.P50, s.P95, s.P99, s.Max, s.Count)
	}
	row("join (ms)", rep.Join)
	row("connect (ms)", rep.Connect)
	row("first frame (ms)", rep.FirstFrame)
	row("first audio (ms)", rep.FirstAudio)
	row("audio delay (ms)", rep.AudioDelay)
	row("video delay (ms)", rep.VideoDelay)
	var paths []string
	for k := range rep.DelayByPath {
		paths = append(paths, k)
	}
	sort.Strings(paths)
	if len(paths) > 1 {
		for _, k := range paths {
			row("  via "+k+" (ms)", rep.DelayByPath[k])
		}
	}
	row("audio jitter (ms)", rep.AudioJitter)
	row("video jitter (ms)", rep.VideoJitter)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "loss\taudio %.3f%%, video %.3f%% (received %d/%d, %d/%d packets)\n",
		rep.AudioLoss.Percent, rep.VideoLoss.Percent, rep.AudioLoss.Received, rep.AudioLoss.Expected, rep.VideoLoss.Received, rep.VideoLoss.Expected)
	f := rep.Freezes
	fmt.Fprintf(tw, "freezes\t%d (%d of %d videos froze), %.1f s frozen, %.2f per video-minute, %d never rendered, %d PLIs sent\n",
		f.Count, f.Frozen, f.Streams, f.TotalSeconds, f.PerMinute, f.NeverRendered, f.PLIs)
	if lp := rep.LastNPaused; lp.Streams > 0 {
		fmt.Fprintf(tw, "paused by last-N\t%d of the shown videos, %.1f s in all (not counted as loss or freezes)\n", lp.Streams, lp.TotalSeconds)
	}
	for _, l := range rep.Layers {
		if rep.VideoLoss.Expected == 0 {
			break // no video in this run
		}
		fmt.Fprintf(tw, "layer %s (%dp)\t%.0f kbit/s received, %d subscriptions, %.0f kbit/s each\n", l.RID, l.Height, l.Kbps, l.Streams, l.PerSub)
	}
	fmt.Fprintf(tw, "forwarded\t%.0f packets/s, %.1f Mbit/s\n", rep.ForwardedPPS, rep.ForwardedKbps/1000)
	if rep.InterBridgeBytes == nil {
		fmt.Fprintf(tw, "inter-bridge\t- (no node exports meshmeet_relay_bytes_total)\n")
	} else {
		fmt.Fprintf(tw, "inter-bridge\t%d bytes sent between bridges in the window (%.1f Mbit/s)\n", *rep.InterBridgeBytes, float64(*rep.InterBridgeBytes)*8/1e6/max(rep.WindowSeconds, 1e-3))
	}
	for _, n := range rep.Nodes {
		if n.CPUSeconds == 0 && n.RSSEndMB == 0 {
			fmt.Fprintf(tw, "node %s\t%d participants, no metrics (remote)\n", n.Name, n.Participants)
			continue
		}
		line := fmt.Sprintf("%d participants, cpu %.2f s (%.2f cores), rss %.0f → %.0f MB, %d media socket drops",
			n.Participants, n.CPUSeconds, n.Cores, n.RSSStartMB, n.RSSEndMB, n.RTCSocketDrops)
		if n.BridgeForwarded != nil {
			line += fmt.Sprintf(", bridge forwarded %.0f packets, dropped %v", *n.BridgeForwarded, n.BridgeDrops)
		}
		fmt.Fprintf(tw, "node %s (%s)\t%s\n", n.Name, n.Region, line)
	}
	if rep.CPUPerPacketUS != nil {
		fmt.Fprintf(tw, "cpu per forwarded packet\t%.1f µs\n", *rep.CPUPerPacketUS)
	}
	if rep.CPUPerBridgePacketUS != nil {
		fmt.Fprintf(tw, "cpu per bridge-forwarded packet\t%.2f µs (node counters)\n", *rep.CPUPerBridgePacketUS)
	}
	if f := rep.Floor; f != nil {
		fmt.Fprintf(tw, "raw floor (cpu %d)\t%.2f µs at 100 B, %.2f µs at 1000 B: %.2f µs at the mean %d B forwarded\n", f.CPU, f.US100, f.US1000, f.AtMeanUS, f.MeanBytes)
		if f.Ratio > 0 {
			fmt.Fprintf(tw, "ratio to the floor\t%.2f× (cpu per forwarded packet ÷ floor)\n", f.Ratio)
		}
	}
	if rep.MemPerParticipantKB != nil {
		fmt.Fprintf(tw, "memory per participant\t%.0f KB\n", *rep.MemPerParticipantKB)
	}
	g := rep.Generator
	fmt.Fprintf(tw, "generator\tcpu %.2f s (%.2f of %d cores), machine %.0f%% busy, %d UDP receive-buffer drops\n", g.CPUSeconds, g.Cores, g.CoresUsable, g.MachineBusy*100, g.UDPRcvbufErrors)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range rep.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", x)
	}
	for _, e := range rep.ErrorSample {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	for _, e := range rep.Guards.Failed {
		fmt.Fprintf(w, "GUARD FAILED: %s\n", e)
	}
	return nil
}
