package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/relay"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/turn"
)

// newMetrics returns a registry of the node's aggregate metrics: counts and
// rates only, with no room, participant or address label (DESIGN.md section
// 6, invariant 8). Every value is read when scraped. ts is the embedded
// TURN server; nil (--no-turn): no TURN metrics.
func newMetrics(br *bridge.Bridge, sig *signaling.Server, ts *turn.Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "meshmeet", Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "meshmeet", Name: name, Help: help}, f))
	}
	gauge("participants", "Participants on this node.", func() float64 { return float64(sig.Stats().Participants) })
	gauge("rooms", "Rooms with a participant on this node.", func() float64 { return float64(sig.Stats().Rooms) })
	reg.MustRegister(placementCollector{sig: sig, desc: prometheus.NewDesc("meshmeet_placement_joins_total",
		"Joins placement decided on this node, by outcome: here, away (redirected to another node), refused (every eligible bridge full).", []string{"outcome"}, nil)})
	counter("signaling_busy_refused_total", "Sockets and joins refused as busy by the per-source and not-yet-joined limits.", func() float64 { return float64(sig.Stats().BusyRefused) })
	counter("signaling_admitted_without_leader_total", "Participants moving from another node admitted on this node's copy of the directory while the directory had no leader.", func() float64 { return float64(sig.Stats().AdmittedWithoutLeader) })
	counter("signaling_source_throttled_total", "Client messages whose reading waited for their source's message budget.", func() float64 { return float64(sig.Stats().SourceThrottled) })
	counter("signaling_chat_refused_total", "Chat messages refused by a room's chat budget.", func() float64 { return float64(sig.Stats().ChatRefused) })
	counter("signaling_chat_dropped_total", "Chat deliveries dropped for a participant that read too slowly.", func() float64 { return float64(sig.Stats().ChatDropped) })
	gauge("signaling_chat_history_bytes", "Bytes of chat history kept for late joiners, over all rooms.", func() float64 { return float64(sig.Stats().ChatHistoryBytes) })
	counter("bridge_received_packets_total", "RTP packets received from publishers.", func() float64 { return float64(br.Stats().ReceivedPackets) })
	counter("bridge_forwarded_packets_total", "RTP packets forwarded to subscribers.", func() float64 { return float64(br.Stats().ForwardedPackets) })
	counter("bridge_forwarded_bytes_total", "RTP bytes forwarded to subscribers.", func() float64 { return float64(br.Stats().ForwardedBytes) })
	counter("bridge_retransmits_total", "Packets resent from the cache for NACKs.", func() float64 { return float64(br.Stats().Retransmits) })
	counter("bridge_thin_written_packets_total", "Forwarded packets written by the bridge's thin write path (SRTP and the egress batch directly); the rest went through pion's RTP sender.", func() float64 { return float64(br.Stats().ThinWrites) })
	counter("bridge_keyframe_requests_total", "Keyframe requests sent to publishers.", func() float64 { return float64(br.Stats().KeyframeRequests) })
	reg.MustRegister(dropCollector{br: br, desc: prometheus.NewDesc("meshmeet_bridge_dropped_packets_total",
		"Packets not delivered to a subscriber, by reason.", []string{"reason"}, nil)})
	reg.MustRegister(candidateCollector{br: br, desc: prometheus.NewDesc("meshmeet_bridge_refused_candidates_total",
		"Remote ICE candidates the bridge refused, by reason.", []string{"reason"}, nil)})
	if ts != nil {
		reg.MustRegister(newTURNCollector(ts))
	}
	return reg
}

// placementCollector exports signaling's placement decisions with an
// outcome label.
type placementCollector struct {
	sig  *signaling.Server
	desc *prometheus.Desc
}

func (c placementCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c placementCollector) Collect(ch chan<- prometheus.Metric) {
	here, away, refused := c.sig.Placed()
	for outcome, n := range map[string]uint64{"here": here, "away": away, "refused": refused} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), outcome)
	}
}

// dropCollector exports the bridge's drop counters with a reason label.
type dropCollector struct {
	br   *bridge.Bridge
	desc *prometheus.Desc
}

func (c dropCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c dropCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.br.Stats().Drops
	for reason, n := range map[string]uint64{
		"queue_full": d.QueueFull, "wait_keyframe": d.WaitKeyframe, "too_big": d.TooBig,
		"malformed": d.Malformed, "evicted": d.Evicted, "unbound": d.Unbound,
		"write_error": d.WriteError, "nack_miss": d.NACKMiss,
		"nack_queue_full": d.NACKQueueFull, "unpublished": d.Unpublished,
		"mux_queue_full": d.MuxQueueFull, "mux_unroutable": d.MuxUnroutable, "mux_malformed": d.MuxMalformed,
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
}

// candidateCollector exports the bridge's refused remote candidates with a
// reason label.
type candidateCollector struct {
	br   *bridge.Bridge
	desc *prometheus.Desc
}

func (c candidateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c candidateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.br.Stats().Candidates
	for reason, n := range map[string]uint64{"denied": s.Denied, "over_limit": s.OverLimit, "malformed": s.Malformed} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
}

// turnRefusals names each refusal counter of turn.Stats as a reason label
// of meshmeet_turn_refused_total. A new counter in turn.Stats is one line
// here, and docs/operations.md lists the reasons.
var turnRefusals = [...]struct {
	reason string
	get    func(turn.Stats) uint64
}{
	{"auth_malformed", func(s turn.Stats) uint64 { return s.AuthMalformed }},
	{"auth_expired", func(s turn.Stats) uint64 { return s.AuthExpired }},
	{"auth_future", func(s turn.Stats) uint64 { return s.AuthFuture }},
	{"auth_failed", func(s turn.Stats) uint64 { return s.AuthFailed }},
	{"auth_other_node", func(s turn.Stats) uint64 { return s.AuthOtherServer }},
	{"unauth_limited", func(s turn.Stats) uint64 { return s.UnauthLimited }},
	{"binding_limited", func(s turn.Stats) uint64 { return s.BindingLimited }},
	{"quota_user", func(s turn.Stats) uint64 { return s.QuotaUser }},
	{"quota_total", func(s turn.Stats) uint64 { return s.QuotaTotal }},
	{"session_ended", func(s turn.Stats) uint64 { return s.SessionEnded }},
	{"tcp_relay_refused", func(s turn.Stats) uint64 { return s.TCPRelayRefused }},
	{"peer_denied", func(s turn.Stats) uint64 { return s.PeerDenied }},
	{"packets_denied", func(s turn.Stats) uint64 { return s.PacketsDenied }},
	{"bandwidth_drops", func(s turn.Stats) uint64 { return s.BandwidthDrops }},
	{"tcp_conns_limited", func(s turn.Stats) uint64 { return s.TCPConnsLimited }},
	{"tcp_timeouts", func(s turn.Stats) uint64 { return s.TCPTimeouts }},
	{"no_channel", func(s turn.Stats) uint64 { return s.NoChannel }},
	{"malformed", func(s turn.Stats) uint64 { return s.Malformed }},
	{"queue_full", func(s turn.Stats) uint64 { return s.QueueDrops }},
	{"send_failed", func(s turn.Stats) uint64 { return s.SendErrors }},
}

// turnCollector exports the TURN server's counters, reading Stats once per
// scrape so that the values of one scrape are consistent. The only label is
// the refusal reason: no address, username or room.
type turnCollector struct {
	ts                     *turn.Server
	allocs, total, refused *prometheus.Desc
	relayed, relayedBytes  *prometheus.Desc
}

func newTURNCollector(ts *turn.Server) turnCollector {
	return turnCollector{
		ts: ts,
		allocs: prometheus.NewDesc("meshmeet_turn_allocations",
			"Live TURN allocations.", nil, nil),
		total: prometheus.NewDesc("meshmeet_turn_allocations_total",
			"TURN allocations made since start.", nil, nil),
		refused: prometheus.NewDesc("meshmeet_turn_refused_total",
			"TURN requests, connections or relayed packets refused, by reason.", []string{"reason"}, nil),
		relayed: prometheus.NewDesc("meshmeet_turn_relayed_packets_total",
			"Packets relayed between TURN clients and peers, either direction.", nil, nil),
		relayedBytes: prometheus.NewDesc("meshmeet_turn_relayed_bytes_total",
			"Payload bytes of those packets.", nil, nil),
	}
}

func (c turnCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.allocs
	ch <- c.total
	ch <- c.refused
	ch <- c.relayed
	ch <- c.relayedBytes
}

func (c turnCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.ts.Stats()
	ch <- prometheus.MustNewConstMetric(c.allocs, prometheus.GaugeValue, float64(s.Allocations))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(s.AllocationsTotal))
	ch <- prometheus.MustNewConstMetric(c.relayed, prometheus.CounterValue, float64(s.RelayedPackets))
	ch <- prometheus.MustNewConstMetric(c.relayedBytes, prometheus.CounterValue, float64(s.RelayedBytes))
	for _, r := range turnRefusals {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.get(s)), r.reason)
	}
}

// withRelayMetrics adds the relay's aggregate counters to reg and returns
// it: links up, datagrams and their payload bytes each way, drops by
// reason. stats is the relay's Stats; it is read once per scrape. No room,
// node or address label: a link's peer is in `meshmeet cluster status`.
func withRelayMetrics(reg *prometheus.Registry, stats func() relay.Stats) *prometheus.Registry {
	reg.MustRegister(relayCollector{
		stats: stats,
		links: prometheus.NewDesc("meshmeet_relay_links",
			"Relay links to other nodes up now.", nil, nil),
		datagrams: prometheus.NewDesc("meshmeet_relay_datagrams_total",
			"Relay datagrams (one RTP packet each) sent (out) and received (in).", []string{"direction"}, nil),
		bytes: prometheus.NewDesc("meshmeet_relay_bytes_total",
			"Bytes of those datagrams (relay frame header and RTP packet; QUIC overhead excluded).", []string{"direction"}, nil),
		drops: prometheus.NewDesc("meshmeet_relay_drops_total",
			"Relay datagrams and control messages dropped, by reason.", []string{"reason"}, nil),
	})
	return reg
}

// relayCollector exports relay.Stats, read once per scrape.
type relayCollector struct {
	stats                          func() relay.Stats
	links, datagrams, bytes, drops *prometheus.Desc
}

func (c relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.links
	ch <- c.datagrams
	ch <- c.bytes
	ch <- c.drops
}

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(s.Links))
	ch <- prometheus.MustNewConstMetric(c.datagrams, prometheus.CounterValue, float64(s.DatagramsIn), "in")
	ch <- prometheus.MustNewConstMetric(c.datagrams, prometheus.CounterValue, float64(s.DatagramsOut), "out")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesIn), "in")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesOut), "out")
	for reason, n := range s.Drops {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), reason)
	}
}

// serveMetrics serves /metrics on addr in g until ctx ends. Off when addr is
// empty.
func serveMetrics(ctx context.Context, g *errgroup.Group, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
	log.Info("metrics enabled", "addr", ln.Addr().String())
	return nil
}
