package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// target is a node participants enter.
type target struct {
	Name   string
	Region string
	URL    string // http://host:port
	// MetricsURL is the node's Prometheus endpoint; empty: none.
	MetricsURL string
	// Local nodes only.
	rtcPort int
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
}

// pid is the local node's process ID, 0 for a remote node.
func (t *target) pid() int {
	if t.cmd == nil || t.cmd.Process == nil {
		return 0
	}
	return t.cmd.Process.Pid
}

// localCluster is N `meshmeet serve` processes on 127.0.0.1 that Run
// started and stops.
type localCluster struct {
	nodes []*target
	dir   string
	log   *slog.Logger
}

// freePorts returns n ports free on 127.0.0.1 for both TCP and UDP (every
// listener of a node gets its own). The sockets are closed before the
// nodes start, so another program could take one in between; startLocal
// then fails with the node's log.
func freePorts(n int) ([]int, error) {
	var out []int
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // UDP side taken: try another
		}
		closers = append(closers, u.Close)
		out = append(out, port)
	}
	return out, nil
}

// newSecret returns a cluster secret in meshmeet's text form (DESIGN.md
// section 9: "meshmeet-cs1:" and 32 random bytes in unpadded base64url).
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "meshmeet-cs1:" + base64.RawURLEncoding.EncodeToString(b)
}

// serveFlags lists the flags `serve --help` shows, so that the bench works
// with a binary that has or lacks optional listeners (TURN, relay).
func serveFlags(ctx context.Context, bin string) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s serve --help: %w", bin, err)
	}
	flags := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if name, ok := strings.CutPrefix(f, "--"); ok {
			flags[name] = true
		}
	}
	return flags, nil
}

// startLocal starts n nodes of bin, dealt to regions in turn, and waits
// until each is ready. With n > 1 they form one cluster with a fresh
// secret; every node votes (up to five), as a small cluster does. Nodes run
// without TURN unless turn is set (TURN-only scenarios); then each has
// its own TURN port.
//
// delay, when not nil, gives the emulated one-way delay between two
// regions; each node then delays its relay packets to nodes of other
// regions by it (the hidden serve flag --emulate-relay-delay), so that
// bridge↔bridge traffic crosses the same emulated links as participants.
//
// pin, when not nil, starts the (single) node on its CPU.
func startLocal(ctx context.Context, bin string, n int, regions []string, extra []string, turn bool, delay func(a, b string) time.Duration, pin *pinPlan, log *slog.Logger) (*localCluster, error) {
	flags, err := serveFlags(ctx, bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "meshmeet-bench-")
	if err != nil {
		return nil, err
	}
	lc := &localCluster{dir: dir, log: log}
	const perNode = 7 // http, rtc, gossip, raft, relay, metrics, turn
	ports, err := freePorts(n * perNode)
	if err != nil {
		return nil, err
	}
	secretFile := filepath.Join(dir, "cluster-secret")
	if n > 1 {
		if err := os.WriteFile(secretFile, []byte(newSecret()+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	gossip := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i*perNode+2]) }
	voters := min(n, 5)
	for i := range n {
		p := ports[i*perNode : (i+1)*perNode]
		name := fmt.Sprintf("bench-%d", i+1)
		region := regions[i%len(regions)]
		args := []string{"serve",
			"--http-addr", "127.0.0.1:" + strconv.Itoa(p[0]),
			"--rtc-port", strconv.Itoa(p[1]),
			"--node-name", name,
			"--region", region,
			"--log-level", "warn",
		}
		if flags["gossip-addr"] {
			args = append(args, "--gossip-addr", "127.0.0.1:"+strconv.Itoa(p[2]))
		}
		if flags["raft-addr"] {
			args = append(args, "--raft-addr", "127.0.0.1:"+strconv.Itoa(p[3]))
		}
		if flags["relay-addr"] {
			args = append(args, "--relay-addr", "127.0.0.1:"+strconv.Itoa(p[4]))
		}
		if flags["metrics-addr"] {
			args = append(args, "--metrics-addr", "127.0.0.1:"+strconv.Itoa(p[5]))
		}
		switch {
		case turn:
			args = append(args, "--turn-addr", "127.0.0.1:"+strconv.Itoa(p[6]))
		case flags["no-turn"]:
			args = append(args, "--no-turn")
		}
		if n > 1 {
			var join []string
			for j := range n {
				if j != i {
					join = append(join, gossip(j))
				}
			}
			args = append(args, "--cluster-secret-file", secretFile, "--join", strings.Join(join, ","),
				"--bootstrap-expect", strconv.Itoa(voters))
			if i < voters {
				args = append(args, "--raft-voter")
			}
			if flags["gossip-profile"] {
				args = append(args, "--gossip-profile", "local")
			}
		}
		if n > 1 && delay != nil && flags["relay-addr"] {
			var ds []string
			for j := range n {
				if d := delay(region, regions[j%len(regions)]); d > 0 && j != i {
					ds = append(ds, "127.0.0.1:"+strconv.Itoa(ports[j*perNode+4])+"="+d.String())
				}
			}
			if len(ds) > 0 {
				args = append(args, "--emulate-relay-delay", strings.Join(ds, ","))
			}
		}
		args = append(args, extra...)
		t := &target{Name: name, Region: region, URL: "http://127.0.0.1:" + strconv.Itoa(p[0]), rtcPort: p[1],
			logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
		lf, err := os.Create(t.logPath)
		if err != nil {
			lc.stop()
			return nil, err
		}
		// Not CommandContext: stop ends the nodes in order, with SIGTERM.
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.Env = append(os.Environ(), "MESHMEET_CLUSTER_SECRET=") // never inherit a secret
		cmd.SysProcAttr = nodeProcAttr()
		if err := pin.start(cmd); err != nil {
			lf.Close()
			lc.stop()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		t.cmd = cmd
		if flags["metrics-addr"] {
			t.MetricsURL = "http://127.0.0.1:" + strconv.Itoa(p[5]) + "/metrics"
		}
		go func() { cmd.Wait(); lf.Close(); close(t.exited) }()
		lc.nodes = append(lc.nodes, t)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, t := range lc.nodes {
		if err := waitReady(wctx, t); err != nil {
			lc.stop()
			return nil, err
		}
	}
	return lc, nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, t *target) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-t.exited:
			return fmt.Errorf("node %s exited at start: %s", t.Name, tail(t.logPath))
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w (log: %s)", t.Name, ctx.Err(), tail(t.logPath))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the end of a log file for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// stop sends SIGTERM to every node, waits up to 10 s for them to exit,
// kills the rest and removes the work directory.
func (lc *localCluster) stop() error {
	for _, t := range lc.nodes {
		if t.cmd != nil && t.cmd.Process != nil {
			t.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	var errs []error
	deadline := time.Now().Add(10 * time.Second)
	for _, t := range lc.nodes {
		select {
		case <-t.exited:
		case <-time.After(time.Until(deadline)):
			t.cmd.Process.Kill()
			<-t.exited
			errs = append(errs, fmt.Errorf("node %s did not stop within 10 s; killed", t.Name))
		}
	}
	os.RemoveAll(lc.dir)
	return errors.Join(errs...)
}
