package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/internal/defaults"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/relay"
)

var defaultRelayAddr = fmt.Sprintf("127.0.0.1:%d", defaults.RelayPort)

// relaySocketBuffer is the receive and send buffer asked for on the relay
// socket: every remote track of every shared meeting arrives on it.
const relaySocketBuffer = 4 << 20

// relayFlags returns the relay flags of serve.
func relayFlags(cfg *Config) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "relay-addr", Value: defaultRelayAddr, EnvVars: envVar("relay-addr"), Destination: &cfg.RelayAddr,
			Usage: "relay between bridges: QUIC over UDP with mutual TLS, cluster-internal"},
		&cli.StringFlag{Name: "emulate-relay-delay", Hidden: true, Destination: &emulateRelayDelay,
			Usage: "bench only: ADDR=DURATION,… delays relay packets to those nodes (docs/bench.md)"},
	}
}

// listenRelay opens the relay's UDP socket and sets the address gossiped
// to the cluster. A dev-mode node (no cluster secret, no --join) listens
// on an ephemeral port, as its gossip and raft do, so that several can run
// side by side.
func listenRelay(cfg *Config) (net.PacketConn, error) {
	addr := cfg.RelayAddr
	_, secretEnv := os.LookupEnv(envClusterSecret)
	if addr == defaultRelayAddr && len(cfg.Mesh.Join.Value()) == 0 && cfg.Mesh.ClusterSecretFile == "" && !secretEnv {
		addr = "127.0.0.1:0"
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("--relay-addr: %w", err)
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		uc.SetReadBuffer(relaySocketBuffer)
		uc.SetWriteBuffer(relaySocketBuffer)
	}
	local := pc.LocalAddr().(*net.UDPAddr)
	cfg.Mesh.RelayAdvertise = local.String()
	if local.IP.IsUnspecified() {
		pub := cfg.PublicIP
		if pub == "" {
			pub, _, _ = net.SplitHostPort(cfg.HTTPAddr)
		}
		cfg.Mesh.RelayAdvertise = net.JoinHostPort(pub, strconv.Itoa(local.Port))
	}
	if emulateRelayDelay != "" {
		delays, err := parseRelayDelay(emulateRelayDelay)
		if err != nil {
			pc.Close()
			return nil, err
		}
		return newDelayConn(pc, delays), nil
	}
	return pc, nil
}

// startRelay runs the relay in g on pc with the cluster's mutual TLS;
// hooks hand its callbacks to signaling.
func startRelay(ctx context.Context, g *errgroup.Group, cfg *Config, pc net.PacketConn, pki *mesh.PKI, hooks *cascadeHooks, log *slog.Logger) (*relay.Relay, error) {
	srv, cli := pki.RelayTLS()
	rc := relay.Config{PacketConn: pc, ServerTLS: srv, ClientTLS: cli, NodeName: cfg.NodeName, Logger: log}
	hooks.wire(&rc)
	r, err := relay.New(rc)
	if err != nil {
		return nil, err
	}
	g.Go(func() error { return r.Run(ctx) })
	return r, nil
}

// relayLinks returns the relay's links for the admin status answer
// (`meshmeet cluster status`).
func relayLinks(r *relay.Relay) func() []mesh.LinkStatus {
	return func() []mesh.LinkStatus {
		st := r.Stats()
		links := make([]mesh.LinkStatus, 0, len(st.PerLink))
		for _, l := range st.PerLink {
			links = append(links, mesh.LinkStatus{
				Peer: l.Peer, Dialled: l.Dialled, RTTMicros: l.RTT.Microseconds(), Loss: l.Loss,
				SendBps: l.SendBPS, RecvBps: l.RecvBPS, LayerCap: l.LayerCap, Rooms: l.Rooms,
			})
		}
		return links
	}
}
