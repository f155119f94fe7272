package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"

	"github.com/urfave/cli/v2"
)

// --rtc-sockets: how many UDP sockets the bridge reads WebRTC media on. All
// are bound to --rtc-port with SO_REUSEPORT; the kernel spreads
// participants over them by a hash of their address and the bridge reads
// each with its own goroutine (bridge.Config.UDPConns), so one socket's
// reader is not the ceiling of a many-core node. One socket (the default
// below 4 cores) keeps pion's ICE mux, as before.

// maxRTCSockets is the most --rtc-sockets accepts; autoRTCSockets the most
// the automatic choice takes.
const (
	maxRTCSockets  = 16
	autoRTCSockets = 8
)

func rtcSocketsFlag(cfg *Config) cli.Flag {
	return &cli.IntFlag{Name: "rtc-sockets", EnvVars: envVar("rtc-sockets"), Destination: &cfg.RTCSockets,
		Usage:  "UDP sockets on --rtc-port, each read by its own core (SO_REUSEPORT, Linux); 0: one per 4 cores, 1 below 4 cores, at most 8",
		Action: func(_ *cli.Context, n int) error { return checkRTCSockets(n) }}
}

func checkRTCSockets(n int) error {
	if n < 0 || n > maxRTCSockets {
		return fmt.Errorf("--rtc-sockets must be between 1 and %d, or 0 for one per 4 cores; not %d", maxRTCSockets, n)
	}
	return nil
}

// rtcSocketCount resolves --rtc-sockets n on a node with procs usable
// cores (GOMAXPROCS): 0 is one per 4 cores, at least 1, at most
// autoRTCSockets.
func rtcSocketCount(n, procs int) int {
	if n > 0 {
		return n
	}
	return min(max(procs/4, 1), autoRTCSockets)
}

// rtcSocketBuffer is the receive and send buffer asked for on each media
// socket. Every participant's media arrives on these sockets: the default
// 208 KiB buffer holds ~30 ms of a busy node's traffic and overflows
// whenever a reader is descheduled for longer. The kernel caps these at
// net.core.rmem_max/wmem_max (docs/operations.md).
const rtcSocketBuffer = 4 << 20

// listenRTC opens the media sockets on addr for --rtc-sockets n: one
// plain socket, or with more than one (on Linux) that many bound to the
// same address and port with SO_REUSEPORT. The first is the bridge's
// UDPConn, the rest its UDPConns.
func listenRTC(ctx context.Context, addr string, n int, log *slog.Logger) ([]net.PacketConn, error) {
	if err := checkRTCSockets(n); err != nil {
		return nil, err
	}
	n = rtcSocketCount(n, runtime.GOMAXPROCS(0))
	if n > 1 && reusePort == nil {
		log.Warn("--rtc-sockets needs SO_REUSEPORT (Linux); using one socket", "asked", n)
		n = 1
	}
	var lc net.ListenConfig
	if n > 1 {
		lc.Control = reusePort
	}
	var out []net.PacketConn
	for i := range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			if i > 0 {
				err = fmt.Errorf("socket %d of %d: %w", i+1, n, err)
			}
			return nil, err
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			uc.SetReadBuffer(rtcSocketBuffer)
			uc.SetWriteBuffer(rtcSocketBuffer)
			if i == 0 { // port 0 (tests): the others take the port it got
				addr = net.JoinHostPort(uc.LocalAddr().(*net.UDPAddr).IP.String(), strconv.Itoa(uc.LocalAddr().(*net.UDPAddr).Port))
			}
		}
		out = append(out, pc)
	}
	if n > 1 {
		log.Info("rtc sockets", "sockets", n)
	}
	return out, nil
}
