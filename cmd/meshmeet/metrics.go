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
	"github.com/meshmeet/meshmeet/signaling"
)

// newMetrics returns a registry of the node's aggregate metrics: counts and
// rates only, with no room, participant or address label (DESIGN.md section
// 6, invariant 8). Every value is read when scraped.
func newMetrics(br *bridge.Bridge, sig *signaling.Server) *prometheus.Registry {
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
	counter("bridge_received_packets_total", "RTP packets received from publishers.", func() float64 { return float64(br.Stats().ReceivedPackets) })
	counter("bridge_forwarded_packets_total", "RTP packets forwarded to subscribers.", func() float64 { return float64(br.Stats().ForwardedPackets) })
	counter("bridge_forwarded_bytes_total", "RTP bytes forwarded to subscribers.", func() float64 { return float64(br.Stats().ForwardedBytes) })
	counter("bridge_retransmits_total", "Packets resent from the cache for NACKs.", func() float64 { return float64(br.Stats().Retransmits) })
	counter("bridge_keyframe_requests_total", "Keyframe requests sent to publishers.", func() float64 { return float64(br.Stats().KeyframeRequests) })
	reg.MustRegister(dropCollector{br: br, desc: prometheus.NewDesc("meshmeet_bridge_dropped_packets_total",
		"Packets not delivered to a subscriber, by reason.", []string{"reason"}, nil)})
	return reg
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
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
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
