//go:build linux

package rawsock

import (
	"syscall"
	"unsafe"
)

// Call6 makes the system call trap raw, again after EINTR, and returns
// its result and error (0: none).
func Call6(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		if e != syscall.EINTR {
			return r, e
		}
	}
}

// Recvfrom reads one datagram into p and its sender into sa (large enough
// for IPv4 and IPv6; an IPv4 sender is a syscall.RawSockaddrInet4 at its
// start, told by sa.Family).
func Recvfrom(fd uintptr, p []byte, sa *syscall.RawSockaddrInet6) (int, syscall.Errno) {
	salen := uint32(unsafe.Sizeof(*sa))
	r, e := Call6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0,
		uintptr(unsafe.Pointer(sa)), uintptr(unsafe.Pointer(&salen)))
	return int(r), e
}
