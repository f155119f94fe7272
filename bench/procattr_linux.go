//go:build linux

package bench

import "syscall"

// nodeProcAttr makes a local node get SIGTERM when the bench process dies,
// so that a killed bench leaves no node behind.
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
