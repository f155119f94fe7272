package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is a running `meshmeet serve`.
type server struct {
	URL     string // http://127.0.0.1:port, no trailing slash
	RTCPort int    // the bridge's --rtc-port

	mu   sync.Mutex
	log  bytes.Buffer // stdout and stderr of the server
	proc *os.Process
}

// kill ends the server with SIGKILL, as a machine that dies would.
func (s *server) kill() error { return s.proc.Kill() }

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// Log returns what the server printed so far.
func (s *server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

var openLine = regexp.MustCompile(`Open (http://[^\s/]+)/?`)

// startServer runs bin serve on free loopback ports until the test ends,
// and returns when it prints its "Open http://" line. extra is appended to
// the serve arguments (a cluster node's flags).
func startServer(t *testing.T, bin string, extra ...string) *server {
	t.Helper()
	httpPort := freePort(t, false)
	rtcPort := freePort(t, true)
	args := []string{"serve",
		"--http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		"--rtc-port", strconv.Itoa(rtcPort),
	}
	help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	if bytes.Contains(help, []byte("--turn-addr")) {
		// TURN on a port of its own (UDP and TCP): the TURN-only meeting
		// reaches the bridge through it.
		args = append(args, "--turn-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, true))))
	}
	if bytes.Contains(help, []byte("--log-level")) {
		args = append(args, "--log-level", "debug")
	}
	args = append(args, extra...)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	s := &server{RTCPort: rtcPort}
	cmd.Stderr = s
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("starting %s %s", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start meshmeet: %v", err)
	}
	s.proc = cmd.Process
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.Write([]byte(line + "\n"))
			if m := openLine.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("meshmeet output:\n%s", s.Log())
		}
	})
	select {
	case u := <-found:
		s.URL = u
	case err := <-exited:
		exited <- err
		t.Fatalf("meshmeet exited before serving: %v\n%s", err, s.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("meshmeet printed no \"Open http://\" line within 60 s:\n%s", s.Log())
	}
	return s
}

// freePort returns a loopback port that is free for TCP and, if udp, for
// UDP too.
// portsTaken are the ports freePort handed out in this process.
var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

func freePort(t *testing.T, udp bool) int {
	t.Helper()
	// Below the kernel's ephemeral range (32768-60999 by default), and
	// never the same port twice: a port from that range, free now, can be
	// handed to a ":0" socket or come back from the next pick before the
	// node binds it (CI: a node's --relay-addr and --rtc-port were the same
	// port: rtc: listen udp: bind: address already in use).
	const lo, hi = 20000, 32000
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if portsTaken[port] {
			continue // handed out before: the node may not have bound it yet
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if udp {
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				l.Close()
				continue
			}
			u.Close()
		}
		l.Close()
		portsTaken[port] = true
		return port
	}
	t.Fatal("no free port")
	return 0
}
