//go:build !linux

package bench

import "syscall"

// nodeProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// the nodes are stopped by the bench's own shutdown.
func nodeProcAttr() *syscall.SysProcAttr { return nil }
