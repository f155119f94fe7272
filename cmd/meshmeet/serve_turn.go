package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/transport/v5/reuseport"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/internal/defaults"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
	"github.com/meshmeet/meshmeet/turn"
)

// turnConfig holds the TURN flags of serve.
type turnConfig struct {
	Addr          string          // --turn-addr: TURN over UDP and TCP
	TLSAddr       string          // --turn-tls-addr: TURN over TLS
	CertFile      string          // --turn-cert
	KeyFile       string          // --turn-key
	Disabled      bool            // --no-turn
	AllowPeers    cli.StringSlice // --turn-allow-peer CIDR, repeatable
	SecretFile    string          // --turn-secret-file
	RelayPorts    string          // --turn-relay-ports MIN-MAX
	CredentialTTL time.Duration   // --turn-credential-ttl
	MaxAllocs     int             // --turn-max-allocations
	MaxUserAllocs int             // --turn-max-allocations-per-user
	MaxBitrate    int64           // --turn-max-bitrate (bit/s per allocation and direction)
	UDPSockets    int             // --turn-udp-sockets (read loops)
}

// turnFlags returns the TURN flags of serve.
func turnFlags(cfg *Config) []cli.Flag {
	t := &cfg.TURN
	return []cli.Flag{
		&cli.StringFlag{Name: "turn-addr", Value: fmt.Sprintf("127.0.0.1:%d", defaults.TURNPort), EnvVars: envVar("turn-addr"), Destination: &t.Addr,
			Usage: "TURN over UDP and TCP"},
		&cli.StringFlag{Name: "turn-tls-addr", EnvVars: envVar("turn-tls-addr"), Destination: &t.TLSAddr,
			Usage: fmt.Sprintf("TURN over TLS, with --turn-cert and --turn-key (e.g. :443 or :%d)", defaults.TURNTLSPort)},
		&cli.StringFlag{Name: "turn-cert", EnvVars: envVar("turn-cert"), Destination: &t.CertFile,
			Usage: "PEM certificate chain for TURN over TLS"},
		&cli.StringFlag{Name: "turn-key", EnvVars: envVar("turn-key"), Destination: &t.KeyFile,
			Usage: "PEM private key for TURN over TLS"},
		&cli.BoolFlag{Name: "no-turn", EnvVars: envVar("no-turn"), Destination: &t.Disabled,
			Usage: "do not run the embedded TURN server"},
		&cli.StringSliceFlag{Name: "turn-allow-peer", EnvVars: envVar("turn-allow-peer"), Destination: &t.AllowPeers,
			Usage: "CIDR (repeatable) that TURN may relay to besides the cluster's bridges, private and special ranges included"},
		&cli.StringFlag{Name: "turn-secret-file", EnvVars: envVar("turn-secret-file"), Destination: &t.SecretFile,
			Usage: "TURN REST secret (coturn's static-auth-secret), re-read when it changes [derived from the cluster secret]"},
		&cli.StringFlag{Name: "turn-relay-ports", Value: "49152-65535", EnvVars: envVar("turn-relay-ports"), Destination: &t.RelayPorts,
			Usage: "UDP port range MIN-MAX of relayed addresses"},
		&cli.DurationFlag{Name: "turn-credential-ttl", Value: turn.DefaultCredentialTTL, EnvVars: envVar("turn-credential-ttl"), Destination: &t.CredentialTTL,
			Usage: "validity of the TURN credentials handed out at join"},
		&cli.IntFlag{Name: "turn-max-allocations", Value: 10000, EnvVars: envVar("turn-max-allocations"), Destination: &t.MaxAllocs,
			Usage: "most live TURN allocations"},
		&cli.IntFlag{Name: "turn-max-allocations-per-user", Value: 6, EnvVars: envVar("turn-max-allocations-per-user"), Destination: &t.MaxUserAllocs,
			Usage: "most live TURN allocations of one participant (all credentials of its session)"},
		&cli.Int64Flag{Name: "turn-max-bitrate", Value: 10_000_000, EnvVars: envVar("turn-max-bitrate"), Destination: &t.MaxBitrate,
			Usage: "most relayed bits per second per allocation and direction (-1: unlimited)"},
		&cli.IntFlag{Name: "turn-udp-sockets", EnvVars: envVar("turn-udp-sockets"), Destination: &t.UDPSockets,
			Usage: "TURN/UDP sockets (relay loops) sharing --turn-addr [one per two CPUs]"},
	}
}

// defaultTURNSockets is the number of TURN/UDP sockets for a node with
// procs CPUs: one per two, at least one, at most 16.
func defaultTURNSockets(procs int) int {
	return min(max(procs/2, 1), 16)
}

// turnNode is the embedded TURN server as serve wires it to signaling and
// to the cluster. With --no-turn it has no server and hands out nothing.
type turnNode struct {
	Server *turn.Server // nil with --no-turn
	// draining: the node is draining (drain.go), so it mints no TURN
	// credentials: no new session can allocate here.
	draining atomic.Bool
	setup    *turnSetup
	log      *slog.Logger
}

// ICEServers is signaling's Config.ICEServers: the ICE servers handed to a
// participant at join and at every resume, with fresh TURN REST credentials
// of its session that only this node's TURN server accepts (username
// "expiry:kid.node.sessionID", turn.Server.Credentials).
func (n *turnNode) ICEServers(sessionID string) []wire.ICEServer {
	if n.Server == nil || n.draining.Load() {
		return nil
	}
	user, pass, err := n.Server.Credentials(sessionID, n.setup.ttl, time.Now())
	if err != nil {
		n.log.Warn("no TURN credentials for a session", "err", err)
		return nil
	}
	return []wire.ICEServer{{URLs: n.setup.urls, Username: user, Credential: pass}}
}

// SessionEnded is signaling's Config.SessionEnded: the participant left,
// was removed or did not resume, so its TURN allocations close and its
// credentials are refused from now on.
func (n *turnNode) SessionEnded(sessionID string) {
	if n.Server != nil {
		n.Server.EndSession(sessionID)
	}
}

// bridgeRefresh is how often the TURN peer set is rebuilt from membership.
const bridgeRefresh = 2 * time.Second

// followBridges keeps the TURN server's peer set equal to the media
// addresses of the cluster's live bridges (members gossip shows alive:
// memberlist's suspicion is not a state of mesh.Member) plus this node's
// own, until ctx ends.
func (n *turnNode) followBridges(ctx context.Context, members func() []mesh.Member) {
	if n.Server == nil || members == nil {
		return
	}
	tick := time.NewTicker(bridgeRefresh)
	defer tick.Stop()
	for {
		n.Server.SetBridges(bridgeAddrs(members(), n.setup.rtcExceptions))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// bridgeAddrs returns the WebRTC media addresses of the live members and
// own (this node's bridge, always a peer).
func bridgeAddrs(members []mesh.Member, own []netip.AddrPort) []netip.AddrPort {
	out := slices.Clone(own)
	for _, m := range members {
		if m.State != mesh.MemberAlive {
			continue
		}
		ap, err := netip.ParseAddrPort(m.Meta.WebRTCAddr)
		if err != nil {
			continue // a host name, or none: not a relay peer
		}
		out = append(out, ap)
	}
	return out
}

// startTURN starts the embedded TURN server in g and returns it, for
// signaling (ICEServers, SessionEnded), membership (followBridges) and
// metrics. With --no-turn it returns a node without a server.
func startTURN(ctx context.Context, g *errgroup.Group, cfg *Config, keys clusterKeys, log *slog.Logger) (*turnNode, error) {
	t := &cfg.TURN
	if t.Disabled {
		return &turnNode{log: log}, nil
	}
	tc, err := buildTURN(cfg, keys, log)
	if err != nil {
		return nil, err
	}
	if err := tc.listen(); err != nil {
		return nil, err
	}
	srv, err := turn.New(tc.server)
	if err != nil {
		tc.closeListeners()
		return nil, err
	}
	g.Go(func() error { return srv.Run(ctx) })
	if t.SecretFile != "" {
		g.Go(func() error {
			watchSecretFile(ctx, t.SecretFile, tc.server.Secrets, t.CredentialTTL, secretFilePoll, log)
			return nil
		})
	}
	log.Info("turn listening", "udp", tc.server.PacketConns[0].LocalAddr().String(), "sockets", len(tc.server.PacketConns), "tls", tc.tls != nil)
	return &turnNode{Server: srv, setup: tc, log: log}, nil
}

// turnSetup is everything startTURN derives from the flags.
type turnSetup struct {
	server  turn.Config
	ttl     time.Duration
	udpAddr string
	tlsAddr string
	tls     *tls.Config
	sockets int

	urlHost, tlsHost string
	allow            []netip.Prefix
	deny             []uint16
	rtcExceptions    []netip.AddrPort
	urls             []string // set by listen, with the bound ports
}

// buildTURN checks the flags and builds the server's Config, without
// opening any socket.
func buildTURN(cfg *Config, keys clusterKeys, log *slog.Logger) (*turnSetup, error) {
	t := &cfg.TURN
	tc := &turnSetup{ttl: t.CredentialTTL, udpAddr: t.Addr, tlsAddr: t.TLSAddr, sockets: t.UDPSockets}
	if tc.ttl <= 0 {
		return nil, fmt.Errorf("--turn-credential-ttl must be positive")
	}

	secret := keys.TURNSecret
	if t.SecretFile != "" {
		s, err := readSecretFile(t.SecretFile)
		if err != nil {
			return nil, err
		}
		secret = s
	}
	if len(secret) == 0 {
		return nil, errors.New("turn: no TURN secret: give --cluster-secret-file or --turn-secret-file (or --no-turn)")
	}

	public, err := netip.ParseAddr(cfg.PublicIP)
	if err != nil || public.IsUnspecified() {
		return nil, fmt.Errorf("turn: --public-ip must be an IP address for TURN relays (or --no-turn)")
	}
	public = public.Unmap()

	host, portStr, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return nil, fmt.Errorf("--turn-addr: %w", err)
	}
	if n, err := strconv.Atoi(portStr); err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("--turn-addr: bad port")
	}
	listenIP := public
	if host != "" {
		if ip, err := netip.ParseAddr(host); err == nil {
			listenIP = ip.Unmap()
		}
	} else {
		listenIP = netip.IPv4Unspecified()
	}

	min, max, err := parsePortRange(t.RelayPorts)
	if err != nil {
		return nil, fmt.Errorf("--turn-relay-ports: %w", err)
	}

	var allow []netip.Prefix
	for _, s := range t.AllowPeers.Value() {
		for _, s := range strings.Split(s, ",") {
			pr, err := turn.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("--turn-allow-peer: %w", err)
			}
			allow = append(allow, pr)
		}
	}

	// TURN relays to the cluster's bridges' media addresses (followBridges
	// keeps them current from gossip; this node's own from the start, which
	// in dev mode on 127.0.0.1 is the only one) and to --turn-allow-peer.
	// The node's service ports are never relayed to on any other address.
	// See docs/turn.md.
	deny := servicePorts(cfg)
	var rtcExceptions []netip.AddrPort
	if cfg.RTCPort > 0 && cfg.RTCPort <= 65535 {
		rtcExceptions = append(rtcExceptions, netip.AddrPortFrom(public, uint16(cfg.RTCPort)))
	}

	tc.urlHost = public.String()
	if public.Is6() {
		tc.urlHost = "[" + tc.urlHost + "]"
	}
	tc.tlsHost = tc.urlHost
	if t.TLSAddr != "" || t.CertFile != "" || t.KeyFile != "" {
		if t.TLSAddr == "" || t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("--turn-tls-addr, --turn-cert and --turn-key go together")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--turn-cert/--turn-key: %w", err)
		}
		if _, _, err := net.SplitHostPort(t.TLSAddr); err != nil {
			return nil, fmt.Errorf("--turn-tls-addr: %w", err)
		}
		tc.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		// Browsers check the certificate against the host of the URL, so
		// turns: names the certificate's first DNS name when it has one.
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil && len(leaf.DNSNames) > 0 && !strings.Contains(leaf.DNSNames[0], "*") {
			tc.tlsHost = leaf.DNSNames[0]
		}
	}
	tc.allow, tc.deny, tc.rtcExceptions = allow, deny, rtcExceptions

	tc.server = turn.Config{
		RelayIP:               public,
		RelayListenIP:         listenIP,
		RelayPortMin:          min,
		RelayPortMax:          max,
		Secrets:               turn.NewSecrets(secret),
		CredentialTTL:         t.CredentialTTL,
		MaxAllocationsPerUser: t.MaxUserAllocs,
		MaxAllocations:        t.MaxAllocs,
		MaxBitrate:            t.MaxBitrate,
		Logger:                log,
	}
	if tc.server.MaxBitrate == 0 {
		tc.server.MaxBitrate = -1 // 0 on the command line: unlimited
	}
	return tc, nil
}

// listen opens the TURN sockets: several UDP sockets on --turn-addr (one
// relay loop each; SO_REUSEPORT spreads clients over them), TCP on the same
// address, and TLS on --turn-tls-addr.
//
// The default is one socket per two CPUs: TURN shares the node with the
// SFU, and a loop relays its clients' packets both ways on one core, so
// half the cores is TURN's share; fewer loops also find more packets ready
// per wake-up (on 2 cores, one loop used 0.7× coturn's CPU per relayed
// packet, two loops 1.0–1.1×: docs/benchmarks.md, "TURN").
func (tc *turnSetup) listen() error {
	n := tc.sockets
	if n <= 0 {
		n = defaultTURNSockets(runtime.GOMAXPROCS(0))
	}
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reuseport.Control
	}
	// Port 0 (tests): the kernel picks the UDP port and TCP takes the same
	// number, which a TCP socket may already hold; then try another.
	tries := 1
	if _, p, err := net.SplitHostPort(tc.udpAddr); err == nil && p == "0" {
		tries = 10
	}
	var ln net.Listener
	for try := 0; ; try++ {
		addr := tc.udpAddr
		for i := 0; i < n; i++ {
			pc, err := lc.ListenPacket(context.Background(), "udp", addr)
			if err != nil {
				tc.closeListeners()
				return fmt.Errorf("turn udp: %w", err)
			}
			tc.server.PacketConns = append(tc.server.PacketConns, pc)
			addr = pc.LocalAddr().String() // port 0: the others share the first one's port
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		tc.closeListeners()
		if try+1 >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("turn tcp: %w", err)
		}
	}
	tc.server.Listeners = append(tc.server.Listeners, ln)
	port := ln.Addr().(*net.TCPAddr).Port
	tc.deny = append(tc.deny, uint16(port))
	tc.urls = []string{
		fmt.Sprintf("turn:%s:%d?transport=udp", tc.urlHost, port),
		fmt.Sprintf("turn:%s:%d?transport=tcp", tc.urlHost, port),
	}
	if tc.tls != nil {
		tln, err := tls.Listen("tcp", tc.tlsAddr, tc.tls)
		if err != nil {
			tc.closeListeners()
			return fmt.Errorf("turn tls: %w", err)
		}
		tc.server.Listeners = append(tc.server.Listeners, tln)
		tlsPort := tln.Addr().(*net.TCPAddr).Port
		tc.deny = append(tc.deny, uint16(tlsPort))
		tc.urls = append(tc.urls, fmt.Sprintf("turns:%s:%d?transport=tcp", tc.tlsHost, tlsPort))
	}
	tc.server.Policy = turn.NewPolicy(tc.allow, tc.rtcExceptions, tc.deny)
	return nil
}

// servicePorts returns the ports the node listens on as configured (HTTP,
// RTC, metrics, TURN, TURN/TLS, gossip, raft) and the defaults of
// internal/defaults: the TURN peer policy denies them on every address.
// Port 0 is skipped: listen adds the ports TURN bound, and the mesh's
// ephemeral dev-mode ports are on loopback, which the policy denies.
func servicePorts(cfg *Config) []uint16 {
	deny := []uint16{defaults.TURNPort, defaults.TURNTLSPort, defaults.HTTPPort,
		defaults.GossipPort, defaults.RaftPort, defaults.RelayPort}
	if cfg.RTCPort > 0 && cfg.RTCPort <= 65535 {
		deny = append(deny, uint16(cfg.RTCPort))
	}
	for _, addr := range []string{cfg.HTTPAddr, cfg.MetricsAddr, cfg.TURN.Addr, cfg.TURN.TLSAddr,
		cfg.Mesh.GossipAddr, cfg.Mesh.RaftAddr} {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n > 0 {
				deny = append(deny, uint16(n))
			}
		}
	}
	return deny
}

func (tc *turnSetup) closeListeners() {
	for _, pc := range tc.server.PacketConns {
		pc.Close()
	}
	for _, ln := range tc.server.Listeners {
		ln.Close()
	}
	tc.server.PacketConns, tc.server.Listeners = nil, nil
}

func parsePortRange(s string) (uint16, uint16, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err1 != nil || err2 != nil || lo == 0 || lo > hi {
		return 0, 0, fmt.Errorf("want MIN-MAX with 1 <= MIN <= MAX <= 65535")
	}
	return uint16(lo), uint16(hi), nil
}

// readSecretFile reads a TURN secret: the file's content without
// surrounding white space, as coturn reads static-auth-secret.
func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--turn-secret-file: %w", errors.Unwrap(err))
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return nil, errors.New("--turn-secret-file: the secret must be at least 16 bytes")
	}
	return b, nil
}

// secretFilePoll is how often --turn-secret-file is re-read.
const secretFilePoll = 5 * time.Second

// watchSecretFile re-reads the secret file every poll and rotates to a
// changed secret; the previous one stays valid for the credential TTL plus
// a minute, so that credentials handed out before still allocate.
func watchSecretFile(ctx context.Context, path string, secrets *turn.Secrets, ttl, poll time.Duration, log *slog.Logger) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := readSecretFile(path)
		if err != nil {
			log.Warn("turn secret file unreadable, keeping the current secret", "err", err)
			continue
		}
		if !bytes.Equal(s, secrets.Current()) {
			secrets.Rotate(s, ttl+time.Minute, time.Now())
			log.Info("turn secret rotated")
		}
	}
}
