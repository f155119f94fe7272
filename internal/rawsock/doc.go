// Package rawsock makes the system calls of a non-blocking UDP socket
// directly (syscall.RawSyscall6) instead of through syscall.Syscall6.
//
// Why: Syscall6 tells the Go scheduler a system call is starting
// (entersyscall), and when every P was idle that wakes sysmon, the
// runtime's monitor thread, which then polls every 20 µs for at least a
// millisecond. A media server is idle between most packets, so each
// packet paid for a burst of sysmon wake-ups (the TURN server and the
// bridge each measured 17–18 % of their CPU there, docs/benchmarks.md).
// On a non-blocking socket the calls return at once, a result or EAGAIN,
// so there is nothing for the scheduler to do meanwhile. Callers run them
// inside syscall.RawConn's Read or Write callbacks and return false on
// EAGAIN, so that the goroutine parks in the netpoller as net.UDPConn's
// own calls do.
//
// Linux only; elsewhere the package is empty and its callers, also
// Linux only, are not built.
package rawsock
