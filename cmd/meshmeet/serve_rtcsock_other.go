//go:build !linux

package main

import "syscall"

// reusePort is nil where meshmeet does not open several media sockets:
// --rtc-sockets above 1 falls back to one socket with a warning.
var reusePort func(network, address string, c syscall.RawConn) error
