package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// meshmeetBinary builds the meshmeet binary once per test run, into
// binDir (removed by TestMain).
var meshmeetBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "meshmeet")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// freePort returns a port that was free a moment ago on 127.0.0.1 for both
// TCP and UDP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestServeBinary runs the real binary as a user would: `meshmeet serve`
// prints the URL to open, serves the web client, hosts a meeting, and shuts
// down cleanly on SIGTERM.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	bin, err := meshmeetBinary()
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "serve",
		"--http-addr", httpAddr,
		"--rtc-port", strconv.Itoa(freePort(t)),
		"--gossip-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--raft-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--turn-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--log-level", "debug")
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the process is reaped
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, after, ok := strings.Cut(sc.Text(), "Open "); ok {
				urlCh <- strings.Fields(after)[0]
			}
		}
	}()
	var url string
	select {
	case url = <-urlCh:
	case <-exited:
		t.Fatalf("serve exited: %v\n%s", waitErr, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve printed no URL\n%s", stderr.String())
	}
	if want := "http://" + httpAddr + "/"; url != want {
		t.Fatalf("serve printed %q, want %q", url, want)
	}

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("<html")) {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}

	// A meeting: two participants, one chat message.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room = "SubprocessRoomNameMustNotBeLogged"
	var alice *client.Client
	for {
		// The one-voter directory elects itself within a second or two of
		// start; until then a join is refused as unavailable.
		alice, err = client.Join(ctx, url, room, client.Options{Name: "Alice Loggedname"})
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), wire.CodeUnavailable) {
			t.Fatalf("join: %v\n%s", err, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer alice.Close()
	bob, err := client.Join(ctx, url, room, client.Options{Name: "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if !awaitEvent(ctx, bob, func(m *wire.Message) bool {
		return m.Type == wire.TypeChat && m.Text == "hi" && m.Name == "Alice Loggedname"
	}) {
		t.Fatal("Bob did not receive Alice's chat")
	}
	alice.Leave(ctx)

	// SIGTERM: Bob is told, the process exits 0.
	cmd.Process.Signal(syscall.SIGTERM)
	if !awaitEvent(ctx, bob, func(m *wire.Message) bool {
		return m.Type == wire.TypeError && m.Error.Code == wire.CodeShutdown
	}) {
		t.Error("the remaining participant was not told of the shutdown")
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("serve exited with %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM\n%s", stderr.String())
	}
	logs := stderr.String()
	if !strings.Contains(logs, "meshmeet stopped") {
		t.Errorf("logs lack the clean stop:\n%s", logs)
	}
	for _, secret := range []string{room, "Loggedname", "/" + room} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// awaitEvent reports whether c receives a message matching ok before ctx
// ends or its session closes.
func awaitEvent(ctx context.Context, c *client.Client, ok func(*wire.Message) bool) bool {
	for {
		select {
		case m, open := <-c.Events():
			if !open {
				return false
			}
			if ok(m) {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}
