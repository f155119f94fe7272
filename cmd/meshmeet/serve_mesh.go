package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/internal/defaults"
	"github.com/meshmeet/meshmeet/mesh"
)

// meshConfig holds the cluster flags of serve.
type meshConfig struct {
	Join              cli.StringSlice
	GossipAddr        string
	RaftAddr          string
	RaftVoter         bool
	BootstrapExpect   int
	ClusterSecretFile string
	Lat, Lon          float64
	HasGeo            bool // --lat or --lon was given
	ClusterCA         string
	NodeCert, NodeKey string
	GossipProfile     string
	RaftTimeout       time.Duration
	DeadGrace         time.Duration
	// Load, when set by serve, reports the node's load for gossip.
	Load func() mesh.Load
	// LiveRooms, when set by serve, reports the rooms this node holds
	// participants of, so the directory leader can remove ghost rooms.
	LiveRooms func() []mesh.RoomKey
	// RelayAdvertise, set by serve, is the relay address gossiped to the
	// cluster.
	RelayAdvertise string
	// PublicURL is this node's public base URL, gossiped for redirects and
	// probes (serve_place.go); empty: derived from the HTTP address.
	PublicURL string
	// RegionPin pins the rooms joined through this node to regions;
	// pinned is its checked value, set by startMesh.
	RegionPin cli.StringSlice
	pinned    []string
	// ClusterURL are the shared names pages are served under (the
	// latency-routed name); originHosts is their checked hosts.
	ClusterURL  cli.StringSlice
	originHosts []string
}

var (
	defaultGossipAddr = fmt.Sprintf("127.0.0.1:%d", defaults.GossipPort)
	defaultRaftAddr   = fmt.Sprintf("127.0.0.1:%d", defaults.RaftPort)
)

// liveRooms implements meshConfig.LiveRooms: signaling's rooms with a
// participant (or a join in progress) here. Before signaling exists the
// node holds no room.
func (l *nodeLoad) liveRooms() []mesh.RoomKey {
	if s := l.sig.Load(); s != nil {
		return s.LiveRooms()
	}
	return nil
}

// envClusterSecret holds the cluster secret itself (DESIGN.md section 9).
const envClusterSecret = "MESHMEET_CLUSTER_SECRET"

// meshFlags returns the cluster flags of serve.
func meshFlags(cfg *Config) []cli.Flag {
	m := &cfg.Mesh
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "join", EnvVars: envVar("join"), Destination: &m.Join,
			Usage: "gossip addresses (host:port) of existing nodes, comma-separated"},
		&cli.StringFlag{Name: "gossip-addr", Value: defaultGossipAddr, EnvVars: envVar("gossip-addr"), Destination: &m.GossipAddr,
			Usage: "memberlist gossip, TCP and UDP"},
		&cli.StringFlag{Name: "raft-addr", Value: defaultRaftAddr, EnvVars: envVar("raft-addr"), Destination: &m.RaftAddr,
			Usage: "raft room directory, TCP with mutual TLS (voters only)"},
		&cli.BoolFlag{Name: "raft-voter", EnvVars: envVar("raft-voter"), Destination: &m.RaftVoter,
			Usage: "this node is a raft voter (3 or 5 per cluster, across regions); implied when running alone"},
		&cli.IntFlag{Name: "bootstrap-expect", Value: 0, EnvVars: envVar("bootstrap-expect"), Destination: &m.BootstrapExpect,
			Usage: "make the first raft configuration once this many voters see each other (default: 3 with --join, 1 alone)"},
		&cli.StringFlag{Name: "cluster-secret-file", EnvVars: envVar("cluster-secret-file"), Destination: &m.ClusterSecretFile,
			Usage: "file holding the cluster secret (or the secret itself in " + envClusterSecret + "); none: dev mode, alone"},
		&cli.Float64Flag{Name: "lat", EnvVars: envVar("lat"), Destination: &m.Lat, Usage: "this node's latitude",
			Action: func(*cli.Context, float64) error { m.HasGeo = true; return nil }},
		&cli.Float64Flag{Name: "lon", EnvVars: envVar("lon"), Destination: &m.Lon, Usage: "this node's longitude",
			Action: func(*cli.Context, float64) error { m.HasGeo = true; return nil }},
		&cli.StringFlag{Name: "cluster-ca", EnvVars: envVar("cluster-ca"), Destination: &m.ClusterCA,
			Usage: "PEM CA of an operator's PKI for raft and relay links, instead of the CA derived from the cluster secret"},
		&cli.StringFlag{Name: "node-cert", EnvVars: envVar("node-cert"), Destination: &m.NodeCert, Usage: "PEM certificate of this node (with --cluster-ca)"},
		&cli.StringFlag{Name: "node-key", EnvVars: envVar("node-key"), Destination: &m.NodeKey, Usage: "PEM key of this node (with --cluster-ca)"},
		&cli.StringFlag{Name: "gossip-profile", Value: "", EnvVars: envVar("gossip-profile"), Destination: &m.GossipProfile,
			Usage: "gossip timings: wan, lan or local (default: wan with --join, local alone)"},
		&cli.DurationFlag{Name: "raft-timeout", Value: 1500 * time.Millisecond, EnvVars: envVar("raft-timeout"), Destination: &m.RaftTimeout,
			Usage: "raft heartbeat and election timeout; at least a few inter-region round trips"},
		&cli.StringFlag{Name: "public-url", EnvVars: envVar("public-url"), Destination: &m.PublicURL,
			Usage: "this node's own public base URL (per-node name, not the latency-routed one), e.g. https://eu-1.meet.example.org; clients are redirected to it (default: http:// and the public IP with the HTTP port, for dev)"},
		&cli.StringSliceFlag{Name: "region-pin", EnvVars: envVar("region-pin"), Destination: &m.RegionPin,
			Usage: "comma-separated regions the rooms joined through this node must stay in (data residency): they never spill elsewhere, a join is refused when those regions are full"},
		&cli.StringSliceFlag{Name: "cluster-url", EnvVars: envVar("cluster-url"), Destination: &m.ClusterURL,
			Usage: "the cluster's shared name(s) clients open, e.g. https://meet.example.org (GeoDNS or latency routing); a page served under it may continue on any node after a redirect"},
		&cli.DurationFlag{Name: "dead-grace", Value: 30 * time.Second, EnvVars: envVar("dead-grace"), Destination: &m.DeadGrace,
			Usage: "how long a dead voter stays in the raft configuration"},
	}
}

// errLooseSecretFile: the cluster secret file can be read by its group or
// by everyone (`meshmeet cluster init > file` under the usual umask 022).
var errLooseSecretFile = errors.New("the cluster secret file is readable by group or others: chmod 600 it")

// checkSecretFileMode reports errLooseSecretFile when path is readable by
// group or others. serve warns and goes on (refusing would stop nodes
// deployed before this check); docs/cluster.md shows how to create the
// file private.
func checkSecretFileMode(path string) error {
	if path == "" || runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil // reading it reports the error
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return errLooseSecretFile
	}
	return nil
}

// readClusterSecret reads the secret from --cluster-secret-file or
// MESHMEET_CLUSTER_SECRET. ok is false when neither is set. Errors never
// contain the secret.
func readClusterSecret(file string) (s mesh.Secret, ok bool, err error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return s, false, fmt.Errorf("--cluster-secret-file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 4096))
		if err != nil {
			return s, false, fmt.Errorf("--cluster-secret-file: %w", err)
		}
		s, err = mesh.ParseSecret(string(b))
		if err != nil {
			return s, false, fmt.Errorf("--cluster-secret-file: %w", err)
		}
		return s, true, nil
	}
	if v, set := os.LookupEnv(envClusterSecret); set && v != "" {
		s, err = mesh.ParseSecret(v)
		if err != nil {
			return s, false, fmt.Errorf("%s: %w", envClusterSecret, err)
		}
		return s, true, nil
	}
	return s, false, nil
}

// loadPKI returns the operator's PKI when --cluster-ca is set, else the one
// derived from the cluster secret.
func loadPKI(m *meshConfig, keys mesh.Keys, nodeName string) (*mesh.PKI, error) {
	if m.ClusterCA == "" && m.NodeCert == "" && m.NodeKey == "" {
		return mesh.NewClusterPKI(keys, nodeName)
	}
	if m.ClusterCA == "" || m.NodeCert == "" || m.NodeKey == "" {
		return nil, errors.New("--cluster-ca, --node-cert and --node-key go together")
	}
	read := func(flag, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		return b, nil
	}
	ca, err := read("cluster-ca", m.ClusterCA)
	if err != nil {
		return nil, err
	}
	cert, err := read("node-cert", m.NodeCert)
	if err != nil {
		return nil, err
	}
	key, err := read("node-key", m.NodeKey)
	if err != nil {
		return nil, err
	}
	return mesh.LoadPKI(ca, cert, key)
}

// startMesh starts the control plane in g: gossip membership and the raft
// room directory. With no cluster flags the node is a one-voter cluster on
// 127.0.0.1 with a random in-memory secret (dev mode), so the default runs
// the same code as a cluster.
func startMesh(ctx context.Context, g *errgroup.Group, cfg *Config, log *slog.Logger) (*controlPlane, error) {
	m := &cfg.Mesh
	secret, haveSecret, err := readClusterSecret(m.ClusterSecretFile)
	if err != nil {
		return nil, err
	}
	if err := checkSecretFileMode(m.ClusterSecretFile); err != nil {
		log.Warn("cluster secret file is readable by group or others; chmod 600 it", "path", m.ClusterSecretFile)
	}
	join := m.Join.Value()
	alone := len(join) == 0
	if !haveSecret {
		if !alone {
			return nil, errors.New("--join needs the cluster secret: --cluster-secret-file or " + envClusterSecret + " (make one with `meshmeet cluster init`)")
		}
		log.Info("no cluster secret: running alone in dev mode with a random in-memory secret")
		secret = mesh.NewSecret()
		// No other node can join a dev-mode node (nobody knows its secret),
		// so its gossip and raft sockets need no fixed port: ephemeral
		// ports let several dev nodes and test servers run side by side.
		if m.GossipAddr == defaultGossipAddr {
			m.GossipAddr = "127.0.0.1:0"
		}
		if m.RaftAddr == defaultRaftAddr {
			m.RaftAddr = "127.0.0.1:0"
		}
	}
	keys := mesh.DeriveKeys(secret)
	pki, err := loadPKI(m, keys, cfg.NodeName)
	if err != nil {
		return nil, err
	}
	voter, expect, profile := m.RaftVoter, m.BootstrapExpect, m.GossipProfile
	if alone && !voter {
		voter = true // a node alone is its own directory
	}
	if expect == 0 {
		expect = 1
		if !alone {
			expect = 3
		}
	}
	if profile == "" {
		profile = mesh.ProfileWAN
		if alone {
			profile = mesh.ProfileLocal
		}
	}
	httpHost, httpPort, _ := net.SplitHostPort(cfg.HTTPAddr)
	pub := cfg.PublicIP
	if pub == "" {
		pub = httpHost
	}
	signalingURL, err := ownPublicURL(cfg, pub, httpPort)
	if err != nil {
		return nil, err
	}
	if m.pinned, err = regionPin(m.RegionPin.Value()); err != nil {
		return nil, err
	}
	if m.originHosts, err = originHosts(m.ClusterURL.Value()); err != nil {
		return nil, err
	}
	gossipLn, gossipPC, err := listenGossip(m.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr: %w", sysErr(err))
	}
	var raftLn net.Listener
	if voter {
		if raftLn, err = net.Listen("tcp", m.RaftAddr); err != nil {
			gossipLn.Close()
			gossipPC.Close()
			return nil, fmt.Errorf("--raft-addr: %w", sysErr(err))
		}
	}
	mc := mesh.Config{
		NodeName:        cfg.NodeName,
		Region:          cfg.Region,
		HasGeo:          m.HasGeo || m.Lat != 0 || m.Lon != 0,
		Lat:             m.Lat,
		Lon:             m.Lon,
		SignalingURL:    signalingURL,
		Capacity:        cfg.MaxParticipants,
		WebRTCAddr:      net.JoinHostPort(pub, strconv.Itoa(cfg.RTCPort)),
		RelayAddr:       m.RelayAdvertise,
		GossipListener:  gossipLn,
		GossipConn:      gossipPC,
		GossipAdvertise: advertise(m.GossipAddr, pub),
		RaftListener:    raftLn,
		RaftAdvertise:   advertise(m.RaftAddr, pub),
		Join:            join,
		Voter:           voter,
		BootstrapExpect: expect,
		Keys:            keys,
		PKI:             pki,
		GossipProfile:   profile,
		RaftTimeout:     m.RaftTimeout,
		DeadGrace:       m.DeadGrace,
		Load:            m.Load,
		LiveRooms:       m.LiveRooms,
		Logger:          log,
	}
	node, err := mesh.New(mc) // owns the sockets from here, also on an error
	if err != nil {
		return nil, err
	}
	if err := node.Start(); err != nil {
		return nil, err
	}
	g.Go(func() error { return node.Run(ctx) })
	return &controlPlane{
		Ready:     node.Ready,
		Directory: node,
		Keys:      clusterKeys{RoomKey: keys.RoomKey, TURNSecret: keys.TURNSecret, AdminToken: keys.AdminToken},
		Admin:     node.AdminHandler(keys.AdminToken),
		PKI:       pki,
	}, nil
}

// listenGossip opens gossip's TCP listener and UDP socket on the same port
// (memberlist advertises one port for both). With port 0 (dev mode) the
// kernel picks a free TCP port whose number another socket may hold for
// UDP: then it tries a fresh one, as memberlist does for its own sockets.
func listenGossip(addr string) (net.Listener, net.PacketConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if port == "0" {
		tries = 10
	}
	for range tries {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, err
		}
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			return ln, pc, nil
		}
		ln.Close()
	}
	return nil, nil, err
}

// sysErr is a socket error without the address (the flag names it).
func sysErr(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// withReadiness answers GET /readyz with 503 while ready says no (the room
// directory cannot reach a raft leader: no room can be created or joined
// here), and passes everything else, /readyz included, to next. /healthz
// (liveness) is not affected.
func withReadiness(ready func() bool, next http.Handler) http.Handler {
	if ready == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready() {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "not ready: the room directory has no leader", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// advertise replaces an unspecified listen host (0.0.0.0, ::) with the
// public IP.
func advertise(listen, public string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		if strings.TrimSpace(public) == "" {
			return ""
		}
		return net.JoinHostPort(public, p)
	}
	return ""
}
