package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/internal/defaults"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/turn"
)

// Config is everything `meshmeet serve` runs with, one field per flag.
type Config struct {
	HTTPAddr  string
	RTCPort   int
	PublicIP  string
	NodeName  string
	Region    string
	LogLevel  string
	LogFormat string
	// MetricsAddr serves Prometheus metrics; empty: off.
	MetricsAddr string
	// RelayAddr is the UDP address of the relay between bridges.
	RelayAddr string
	// MaxParticipants and MaxRoomParticipants are signaling's caps.
	MaxParticipants, MaxRoomParticipants int
	// E2EERequired: every room requires end-to-end encryption.
	E2EERequired bool
	// DrainTimeout bounds a drain (SIGTERM, cluster drain): drain.go.
	DrainTimeout time.Duration
	// LastN is how many recent speakers' video each participant gets
	// (--last-n; 0: all video): serve_cascade.go.
	LastN int
	// RTCSockets is how many UDP sockets share --rtc-port
	// (--rtc-sockets; 0: one per 4 cores): serve_rtcsock.go.
	RTCSockets int

	Mesh meshConfig // serve_mesh.go
	Auth authConfig // token.go: --auth, --jwt-*, --trusted-proxy
	TURN turnConfig // serve_turn.go
}

func serveCommand() *cli.Command {
	cfg := &Config{}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "http-addr", Value: fmt.Sprintf("127.0.0.1:%d", defaults.HTTPPort), EnvVars: envVar("http-addr"), Destination: &cfg.HTTPAddr,
			Usage: "HTTP: web client, WebSocket signaling, health, admin API"},
		&cli.IntFlag{Name: "rtc-port", Value: defaults.RTCPort, EnvVars: envVar("rtc-port"), Destination: &cfg.RTCPort,
			Usage: "WebRTC media: one UDP port (ICE mux) and ICE-TCP on the same number"},
		rtcSocketsFlag(cfg),
		&cli.StringFlag{Name: "public-ip", EnvVars: envVar("public-ip"), Destination: &cfg.PublicIP,
			Usage: "address put in ICE candidates and advertised to the cluster (default: the http-addr host)"},
		&cli.StringFlag{Name: "node-name", EnvVars: envVar("node-name"), Destination: &cfg.NodeName,
			Usage: "this node's name in the cluster (default: the hostname)"},
		&cli.StringFlag{Name: "region", Value: "local", EnvVars: envVar("region"), Destination: &cfg.Region,
			Usage: "this node's region"},
		&cli.IntFlag{Name: "max-participants", Value: 1000, EnvVars: envVar("max-participants"), Destination: &cfg.MaxParticipants,
			Usage: "participants this node accepts, over all its rooms"},
		&cli.IntFlag{Name: "max-room-participants", Value: 100, EnvVars: envVar("max-room-participants"), Destination: &cfg.MaxRoomParticipants,
			Usage: "participants of one meeting, counted over every bridge that holds it"},
		lastNFlag(cfg),
		&cli.StringFlag{Name: "metrics-addr", EnvVars: envVar("metrics-addr"), Destination: &cfg.MetricsAddr,
			Usage: "serve Prometheus metrics (aggregate only) on this address, e.g. 127.0.0.1:9090; off unless set"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: envVar("log-level"), Destination: &cfg.LogLevel,
			Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: envVar("log-format"), Destination: &cfg.LogFormat,
			Usage: "text or json"},
		&cli.BoolFlag{Name: "e2ee-required", EnvVars: envVar("e2ee-required"), Destination: &cfg.E2EERequired,
			Usage: "every room requires end-to-end encryption: clients that do not encrypt are refused (docs/e2ee.md)"},
		&cli.DurationFlag{Name: "drain-timeout", Value: defaultDrainTimeout, EnvVars: envVar("drain-timeout"), Destination: &cfg.DrainTimeout,
			Usage: "on SIGTERM or `cluster drain`, how long to move participants to other nodes before stopping anyway"},
	}
	flags = append(flags, meshFlags(cfg)...)
	flags = append(flags, authFlags(cfg)...)
	flags = append(flags, turnFlags(cfg)...)
	flags = append(flags, relayFlags(cfg)...)
	return &cli.Command{
		Name:  "serve",
		Usage: "run a node (with no flags: a single-node deployment on 127.0.0.1)",
		Flags: flags,
		Action: func(c *cli.Context) error {
			return serve(c.Context, cfg, c.App.Writer)
		},
	}
}

func newLogger(cfg *Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", cfg.LogFormat)
}

// serve runs a node until ctx ends, then shuts it down in order: stop
// accepting WebSockets, close the rooms, leave the cluster, stop TURN.
func serve(ctx context.Context, cfg *Config, stdout interface{ Write([]byte) (int, error) }) error {
	log, err := newLogger(cfg)
	if err != nil {
		return err
	}
	// Access control is checked before anything starts: a bad or short
	// secret stops startup.
	auth, err := cfg.Auth.build()
	if err != nil {
		return err
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	httpHost, _, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	if cfg.PublicIP == "" {
		cfg.PublicIP = httpHost
	}
	if cfg.RTCPort <= 0 || cfg.RTCPort > 65535 {
		return fmt.Errorf("--rtc-port %d out of range", cfg.RTCPort)
	}
	log = log.With("node", cfg.NodeName)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	// abort stops what was started before a later step failed.
	abort := func(err error) error {
		cancel()
		g.Wait()
		return err
	}

	relayConn, err := listenRelay(cfg)
	if err != nil {
		return abort(err)
	}
	defer relayConn.Close() // after g.Wait: the relay has stopped

	load := &nodeLoad{}
	cfg.Mesh.Load = load.load
	cfg.Mesh.LiveRooms = load.liveRooms
	cp, err := startMesh(ctx, g, cfg, log)
	if err != nil {
		return abort(err)
	}
	hooks := &cascadeHooks{}
	rel, err := startRelay(ctx, g, cfg, relayConn, cp.PKI, hooks, log)
	if err != nil {
		return abort(err)
	}
	if n, ok := cp.Directory.(*mesh.Node); ok {
		cp.Admin = n.AdminHandlerWith(cp.Keys.AdminToken, relayLinks(rel)) // cluster status shows the relay links
	}

	allowCandidate, err := remoteCandidatePolicy(cfg)
	if err != nil {
		return abort(err)
	}
	rtcAddr := net.JoinHostPort(httpHost, strconv.Itoa(cfg.RTCPort))
	udps, err := listenRTC(ctx, rtcAddr, cfg.RTCSockets, log) // serve_rtcsock.go: buffers, SO_REUSEPORT
	if err != nil {
		return abort(fmt.Errorf("rtc: %w", err))
	}
	udp := udps[0]
	tcp, err := net.Listen("tcp", rtcAddr)
	if err != nil {
		for _, u := range udps {
			u.Close()
		}
		return abort(fmt.Errorf("rtc tcp: %w", err))
	}
	ip := net.ParseIP(cfg.PublicIP)
	br, err := bridge.New(bridge.Config{
		UDPConn:              udp,
		UDPConns:             udps[1:],
		TCPListener:          tcp,
		PublicIPs:            []string{cfg.PublicIP},
		IncludeLoopback:      ip != nil && ip.IsLoopback(),
		AllowRemoteCandidate: allowCandidate,
		LastN:                bridgeLastN(cfg.LastN),
		Logger:               log,
	})
	if err != nil {
		return abort(err) // New closed the sockets
	}
	// The bridge owns the sockets now; Run's end closes them, on shutdown
	// as when a later step fails.
	g.Go(func() error { return br.Run(ctx) })

	tn, err := startTURN(ctx, g, cfg, cp.Keys, log)
	if err != nil {
		return abort(err)
	}
	// TURN relays to the cluster's bridges: follow them in gossip.
	if m, ok := cp.Directory.(interface{ Members() []mesh.Member }); ok {
		g.Go(func() error { tn.followBridges(ctx, m.Members); return nil })
	}

	// A meeting spans the bridges that hold it: signaling attaches its
	// rooms to the relay, with the peers' gossiped relay addresses.
	members := func() []mesh.Member { return nil }
	var drainRef atomic.Pointer[drainer] // set once signaling exists
	if m, ok := cp.Directory.(interface{ Members() []mesh.Member }); ok {
		members = m.Members
	}
	sig, err := signaling.New(signaling.Config{
		NodeName:            cfg.NodeName,
		Region:              cfg.Region,
		RoomKey:             cp.Keys.RoomKey,
		Directory:           cp.Directory,
		Bridge:              br,
		ICEServers:          tn.ICEServers,
		SessionEnded:        tn.SessionEnded,
		Admin:               withDrainAdmin(cp.Admin, cp.Keys.AdminToken, cfg.NodeName, &drainRef, ctx),
		Alternates:          alternates(cfg.NodeName, cfg.Region, members),
		Relay:               rel,
		RelayAddr:           relayAddrs(members),
		Regions:             placeRegions(members, cfg.NodeName), // serve_place.go
		Bridges:             placeBridges(members),
		RegionPin:           cfg.Mesh.pinned,
		ClusterOrigins:      cfg.Mesh.originHosts,
		MaxParticipants:     cfg.MaxParticipants,
		MaxRoomParticipants: cfg.MaxRoomParticipants,
		Auth:                auth.auth,
		AuthCreateOnly:      auth.createOnly,
		StrongModeration:    auth.strong,
		TrustedProxies:      auth.trustedProxies,
		E2EERequired:        cfg.E2EERequired,
		Logger:              log,
	})
	if err != nil {
		return abort(err)
	}
	hooks.sig.Store(sig)
	dr := &drainer{sig: sig, turn: tn, self: cfg.NodeName, region: cfg.Region, timeout: cfg.DrainTimeout, stop: cancel, log: log}
	if m, ok := cp.Directory.(drainMembers); ok {
		dr.mesh = m
	}
	drainRef.Store(dr)
	onTerm := func() { dr.request(ctx, "SIGTERM") }
	termHandler.Store(&onTerm)
	defer termHandler.Store(nil)
	load.br.Store(br)
	load.sig.Store(sig)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return abort(fmt.Errorf("http: %w", err))
	}
	if err := serveMetrics(ctx, g, cfg.MetricsAddr, withRelayMetrics(newMetrics(br, sig, tn.Server), rel.Stats), log); err != nil {
		ln.Close()
		return abort(fmt.Errorf("--metrics-addr: %w", err))
	}
	srv := newHTTPServer(withReadiness(cp.Ready, sig), log)

	g.Go(func() error { return sig.Run(ctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})

	log.Info("meshmeet is running", "http", ln.Addr().String(), "rtc", rtcAddr, "region", cfg.Region)
	fmt.Fprintf(stdout, "meshmeet %s is running. Open http://%s/ in your browser.\n", version, ln.Addr())
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("meshmeet stopped")
	return err
}

// remoteCandidatePolicy returns the bridge's Config.AllowRemoteCandidate:
// the TURN deny list opened by the --turn-allow-peer ranges
// (turn.Policy.CheckRange), so that a participant's ICE candidates cannot
// name an address TURN may not relay to. It applies with --no-turn too.
func remoteCandidatePolicy(cfg *Config) (func(netip.Addr) bool, error) {
	var allow []netip.Prefix
	for _, v := range cfg.TURN.AllowPeers.Value() {
		for _, s := range strings.Split(v, ",") {
			pr, err := turn.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("--turn-allow-peer: %w", err)
			}
			allow = append(allow, pr)
		}
	}
	pol := turn.NewPolicy(allow, nil, nil)
	return func(ip netip.Addr) bool { return pol.CheckRange(ip) == nil }, nil
}

// clusterKeys are the keys every part derives from the cluster secret.
type clusterKeys struct {
	RoomKey    []byte // HMAC key that turns room names into directory keys
	TURNSecret []byte // TURN REST shared secret
	AdminToken []byte // authenticates admin requests
}

// controlPlane is what startMesh hands to the rest of the node.
type controlPlane struct {
	Ready     func() bool // the directory can reach a leader (/readyz)
	Directory mesh.Directory
	Keys      clusterKeys
	Admin     http.Handler // mounted at /admin/; nil: none
	PKI       *mesh.PKI    // mutual TLS between nodes (raft, relay)
}
