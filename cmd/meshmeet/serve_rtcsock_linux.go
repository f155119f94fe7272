package main

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort is a net.ListenConfig.Control that sets SO_REUSEPORT before
// bind. The kernel lets only sockets of the same user join the group.
var reusePort = func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
