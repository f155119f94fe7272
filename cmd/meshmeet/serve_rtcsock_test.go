package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRTCSocketsFlag: --rtc-sockets outside 0..16 stops serve before it
// starts anything; 0 picks one socket per 4 cores, 1 below 4, at most 8.
func TestRTCSocketsFlag(t *testing.T) {
	for _, v := range []string{"-1", "17"} {
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := app.Run([]string{"meshmeet", "serve", "--rtc-sockets", v, "--http-addr", "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), "--rtc-sockets") {
			t.Errorf("--rtc-sockets %s: %v", v, err)
		}
	}
	for _, c := range []struct{ n, procs, want int }{
		{0, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 4, 1}, {0, 8, 2}, {0, 11, 2}, {0, 16, 4}, {0, 32, 8}, {0, 64, 8},
		{1, 64, 1}, {2, 1, 2}, {16, 2, 16},
	} {
		if got := rtcSocketCount(c.n, c.procs); got != c.want {
			t.Errorf("rtcSocketCount(%d, %d cores) = %d, want %d", c.n, c.procs, got, c.want)
		}
	}
}

// TestRTCSocketsListen: --rtc-sockets 3 opens three sockets on one address
// and port, each with SO_REUSEPORT and the same buffers as the first; a
// socket without SO_REUSEPORT cannot take the port from under them.
func TestRTCSocketsListen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT sockets: Linux only")
	}
	socks, err := listenRTC(context.Background(), "127.0.0.1:0", 3, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	if len(socks) != 3 {
		t.Fatalf("%d sockets, want 3", len(socks))
	}
	opt := func(s net.PacketConn, name int) int {
		raw, err := s.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, name) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	for i, s := range socks {
		if s.LocalAddr().String() != socks[0].LocalAddr().String() {
			t.Errorf("socket %d on %v, socket 0 on %v", i, s.LocalAddr(), socks[0].LocalAddr())
		}
		if opt(s, unix.SO_REUSEPORT) != 1 {
			t.Errorf("socket %d without SO_REUSEPORT", i)
		}
		if a, b := opt(s, unix.SO_RCVBUF), opt(socks[0], unix.SO_RCVBUF); a != b {
			t.Errorf("socket %d: SO_RCVBUF %d, socket 0 %d", i, a, b)
		}
		if a, b := opt(s, unix.SO_SNDBUF), opt(socks[0], unix.SO_SNDBUF); a != b {
			t.Errorf("socket %d: SO_SNDBUF %d, socket 0 %d", i, a, b)
		}
	}
	if pc, err := net.ListenPacket("udp", socks[0].LocalAddr().String()); err == nil {
		pc.Close()
		t.Error("a socket without SO_REUSEPORT bound the media port")
	}
	one, err := listenRTC(context.Background(), "127.0.0.1:0", 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer one[0].Close()
	if len(one) != 1 || opt(one[0], unix.SO_REUSEPORT) != 0 {
		t.Errorf("--rtc-sockets 1: %d sockets, SO_REUSEPORT %d; want one plain socket", len(one), opt(one[0], unix.SO_REUSEPORT))
	}
}

// TestRTCSocketsServe: `serve --rtc-sockets 2` serves a meeting: three
// participants each hear the other two, intact.
func TestRTCSocketsServe(t *testing.T) {
	if testing.Short() {
		t.Skip("a node with media; skipped in -short mode")
	}
	nodes := serveNodes(t, 1, "--rtc-sockets", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logs := []*audioLog{{got: map[uint32][2]int{}}, {got: map[uint32][2]int{}}, {got: map[uint32][2]int{}}}
	for i, l := range logs {
		joinTalking(ctx, t, "http://"+nodes[0], "n0", "RTCSocketsRoom", fmt.Sprintf("P%d", i), uint32(i+1), l)
	}
	for i, l := range logs {
		for j := range logs {
			if i == j {
				continue
			}
			waitFor(t, fmt.Sprintf("P%d hears P%d", i, j), func() bool {
				n := l.count(uint32(j + 1))
				return n[0] >= 20 && n[1] == n[0]
			})
		}
	}
}
