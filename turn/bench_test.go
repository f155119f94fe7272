package turn

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/transport/v5/reuseport"
)

// TestCompareCoturn measures relayed packets per second and CPU time per
// relayed packet of meshmeet's TURN server (the real `meshmeet serve`
// binary, in a child process) and of coturn's turnserver, both driven by
// the same turnutils_uclient load against a turnutils_peer echo on
// loopback, alternating servers, several runs. It prints the medians and
// the ratio; docs/benchmarks.md records them. It is a benchmark, not a
// test: it asserts nothing about speed.
//
//	MESHMEET_BENCH_COTURN=1 go test -run TestCompareCoturn -v ./turn
//
// MESHMEET_BENCH_RUNS (default 5), MESHMEET_BENCH_CLIENTS (10) and
// MESHMEET_BENCH_MSGS (3000 per client) tune the load; MESHMEET_BENCH_CHILD=1
// measures turn.Server in a child process instead of `meshmeet serve`, with
// MESHMEET_BENCH_UDP_SOCKETS listener sockets (default GOMAXPROCS).
func TestCompareCoturn(t *testing.T) {
	if os.Getenv("MESHMEET_BENCH_COTURN") != "1" {
		t.Skip("set MESHMEET_BENCH_COTURN=1 to run the coturn comparison")
	}
	for _, bin := range []string{"turnserver", "turnutils_uclient", "turnutils_peer"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install coturn)", bin)
		}
	}
	runs := envInt("MESHMEET_BENCH_RUNS", 5)
	clients := envInt("MESHMEET_BENCH_CLIENTS", 10)
	msgs := envInt("MESHMEET_BENCH_MSGS", 3000)

	dir := t.TempDir()
	secret := "bench-secret-0123456789abcdef0123"
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	// The real binary if it builds; else this test binary in child mode
	// (TestMain), which runs the same turn.Server wiring without the
	// other roles of a node.
	mm := filepath.Join(dir, "meshmeet")
	useServe := os.Getenv("MESHMEET_BENCH_CHILD") != "1"
	if !useServe {
		t.Log("MESHMEET_BENCH_CHILD=1: measuring the turn.Server child, not meshmeet serve")
	} else if out, err := exec.Command("go", "build", "-o", mm, "github.com/meshmeet/meshmeet/cmd/meshmeet").CombinedOutput(); err != nil {
		t.Logf("go build meshmeet failed, measuring the turn.Server child instead: %v\n%s", err, out)
		useServe = false
	}

	peerPort := freeUDPPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	peer := exec.CommandContext(ctx, "turnutils_peer", "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); peer.Wait() }()

	servers := map[string]func(port int) *exec.Cmd{
		"meshmeet": func(port int) *exec.Cmd {
			if !useServe {
				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "MESHMEET_TURN_CHILD="+fmt.Sprintf("127.0.0.1:%d", port), "MESHMEET_TURN_CHILD_SECRET="+secret)
				return cmd
			}
			return exec.CommandContext(ctx, mm, "serve",
				"--http-addr", fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)),
				"--rtc-port", strconv.Itoa(freeUDPPort(t)),
				"--turn-addr", fmt.Sprintf("127.0.0.1:%d", port),
				"--turn-secret-file", secretFile,
				"--turn-allow-peer", "127.0.0.1/32",
				"--turn-credential-ttl", "25h", // turnutils_uclient mints day-long usernames
				"--turn-relay-ports", "40000-44999",
				"--turn-max-allocations-per-user", "1000", // every uclient client shares one username
				"--log-level", "warn")
		},
		"coturn": func(port int) *exec.Cmd {
			return exec.CommandContext(ctx, "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls",
				"--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
				"--listening-port", strconv.Itoa(port),
				"--min-port", "45000", "--max-port", "49999",
				"--use-auth-secret", "--static-auth-secret", secret, "--realm", "meshmeet",
				"--allow-loopback-peers", "--no-stdout-log", "--log-file", filepath.Join(dir, "coturn.log"))
		},
	}

	type result struct{ pps, cpuPerPkt, schedPerPkt float64 }
	results := map[string][]result{}
	for i := 0; i < runs; i++ {
		for _, name := range []string{"meshmeet", "coturn"} {
			port := freeUDPPort(t)
			cmd := servers[name](port)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitUDPListening(port) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s does not listen on UDP port %d:\n%s", name, port, stderr.String())
			}
			// Idle CPU (the other roles of a node, timers) is measured
			// for a second and subtracted in proportion to the load's wall time.
			idle0, idleSched0 := procCPU(t, cmd.Process.Pid), schedCPU(cmd.Process.Pid)
			idleStart := time.Now()
			time.Sleep(2 * time.Second)
			cpu0, sched0 := procCPU(t, cmd.Process.Pid), schedCPU(cmd.Process.Pid)
			idleWall := time.Since(idleStart).Seconds()
			idlePerSecond := time.Duration(float64(cpu0-idle0) / idleWall)
			schedIdlePerSecond := time.Duration(float64(sched0-idleSched0) / idleWall)
			start := time.Now()
			out, err := exec.CommandContext(ctx, "turnutils_uclient", "-u", "bench", "-W", secret, "-p", strconv.Itoa(port),
				"-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-c",
				"-m", strconv.Itoa(clients), "-n", strconv.Itoa(msgs), "-l", "170", "-z", "1", "127.0.0.1").CombinedOutput()
			wall := time.Since(start)
			raw := procCPU(t, cmd.Process.Pid) - cpu0
			cpu := raw - time.Duration(float64(idlePerSecond)*wall.Seconds())
			schedRaw := schedCPU(cmd.Process.Pid) - sched0
			schedCPU := schedRaw - time.Duration(float64(schedIdlePerSecond)*wall.Seconds())
			cmd.Process.Kill()
			cmd.Wait()
			if err != nil {
				t.Fatalf("%s: turnutils_uclient: %v\n%s\n%s", name, err, out, stderr.String())
			}
			sent, recv := uclientTotals(string(out))
			pkts := float64(sent + recv) // each message crosses the server twice: to the peer and back
			if recv == 0 {
				t.Fatalf("%s relayed nothing\n%s", name, out)
			}
			r := result{pps: pkts / wall.Seconds(), cpuPerPkt: cpu.Seconds() / pkts * 1e6, schedPerPkt: schedCPU.Seconds() / pkts * 1e6}
			results[name] = append(results[name], r)
			t.Logf("run %d %-8s sent %d recv %d in %v: %.0f relayed pkt/s, cpu %v (idle %v/s subtracted), %.2f µs/pkt; schedstat cpu %v (idle %v/s), %.2f µs/pkt",
				i, name, sent, recv, wall.Round(time.Millisecond), r.pps, raw, idlePerSecond.Round(time.Millisecond), r.cpuPerPkt,
				schedRaw.Round(time.Millisecond), schedIdlePerSecond.Round(100*time.Microsecond), r.schedPerPkt)
		}
	}
	median := func(name string, f func(result) float64) float64 {
		var v []float64
		for _, r := range results[name] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	mmCPU, ctCPU := median("meshmeet", func(r result) float64 { return r.cpuPerPkt }), median("coturn", func(r result) float64 { return r.cpuPerPkt })
	mmPPS, ctPPS := median("meshmeet", func(r result) float64 { return r.pps }), median("coturn", func(r result) float64 { return r.pps })
	t.Logf("medians of %d runs (%d clients × %d msgs of 170 B, 1 ms interval):", runs, clients, msgs)
	t.Logf("  meshmeet: %.0f relayed pkt/s, %.2f µs CPU per relayed packet", mmPPS, mmCPU)
	t.Logf("  coturn:   %.0f relayed pkt/s, %.2f µs CPU per relayed packet", ctPPS, ctCPU)
	t.Logf("  ratio meshmeet/coturn CPU per packet: %.2fx (target <= 1.0x)", mmCPU/ctCPU)
	mmSched, ctSched := median("meshmeet", func(r result) float64 { return r.schedPerPkt }), median("coturn", func(r result) float64 { return r.schedPerPkt })
	t.Logf("  same from schedstat (ns run time of every thread): meshmeet %.2f, coturn %.2f µs per relayed packet, ratio %.2fx", mmSched, ctSched, mmSched/ctSched)
}

var uclientTotalsRE = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)

// uclientTotals returns the last (total) counts turnutils_uclient printed.
func uclientTotals(out string) (sent, recv int) {
	all := uclientTotalsRE.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return 0, 0
	}
	m := all[len(all)-1]
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv
}

// procCPU returns the user+system CPU time of process pid, all threads.
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based) of the whole line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// schedCPU returns the run time of every live thread of process pid from
// /proc/<pid>/task/*/schedstat: nanosecond resolution, where /proc/<pid>/stat
// counts 10 ms ticks (which makes the 2-second idle measurement coarse).
// Threads that exited are missing; neither server's threads exit under load.
func schedCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

func waitUDPListening(port int) bool {
	want := fmt.Sprintf(":%04X ", port)
	for i := 0; i < 400; i++ {
		b, _ := os.ReadFile("/proc/net/udp")
		if bytes.Contains(b, []byte(want)) {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func TestMain(m *testing.M) {
	if addr := os.Getenv("MESHMEET_TURN_CHILD"); addr != "" {
		if err := runChild(addr, os.Getenv("MESHMEET_TURN_CHILD_SECRET")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild serves TURN on addr as `meshmeet serve` would (one UDP socket
// per CPU with SO_REUSEPORT, TCP, default limits), allowing loopback peers,
// until killed.
func runChild(addr, secret string) error {
	lc := net.ListenConfig{Control: reuseport.Control}
	cfg := Config{
		RelayIP:      netip.MustParseAddr("127.0.0.1"),
		RelayPortMin: 40000, RelayPortMax: 44999,
		Secrets:               NewSecrets([]byte(secret)),
		CredentialTTL:         25 * time.Hour,
		MaxAllocationsPerUser: 1000, // every uclient client shares one username
		Policy:                NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, nil, nil),
		Logger:                slog.New(slog.DiscardHandler),
	}
	sockets := envInt("MESHMEET_BENCH_UDP_SOCKETS", runtime.GOMAXPROCS(0))
	for i := 0; i < sockets; i++ {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			return err
		}
		cfg.PacketConns = append(cfg.PacketConns, pc)
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	cfg.Listeners = []net.Listener{ln}
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if prof := os.Getenv("MESHMEET_TURN_CHILD_CPUPROFILE"); prof != "" {
		// Profile until SIGTERM, for looking into the figures.
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	return s.Run(ctx)
}
