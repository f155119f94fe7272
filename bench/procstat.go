package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	CPU float64 // user + system seconds since the process started
	RSS int64   // resident set size, bytes
	// udpDrops are the drops of a node's RTC socket (sampler only).
	udpDrops int64
	// m are the node's own metrics, when it serves them.
	m nodeMetrics
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status ("self" for pid 0).
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, err
	}
	cpu, err := parseStatCPU(b)
	if err != nil {
		return procSample{}, err
	}
	st, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procSample{}, err
	}
	return procSample{CPU: cpu, RSS: parseStatusRSS(st)}, nil
}

// parseStatCPU returns utime+stime in seconds from /proc/<pid>/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	stm, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: bad utime or stime")
	}
	return float64(ut+stm) / clockTicks, nil
}

// parseStatusRSS returns VmRSS in bytes from /proc/<pid>/status (0 if
// absent, as for a zombie).
func parseStatusRSS(b []byte) int64 {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// readMachineCPU returns the busy and total jiffies of all CPUs from
// /proc/stat.
func readMachineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("proc stat: no cpu line")
	}
	for i, x := range f[1:] {
		if i >= 8 {
			break // guest time is already counted in user
		}
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		total += v
		// idle (4th) and iowait (5th) are not busy.
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}

// readUDPRcvbufErrors returns the kernel's count of UDP datagrams dropped
// because a socket's receive buffer was full (/proc/net/snmp, this network
// namespace). On loopback every packet of a local run crosses it.
func readUDPRcvbufErrors() (int64, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	return parseSNMPUDP(b, "RcvbufErrors")
}

// parseSNMPUDP returns one field of the Udp lines of /proc/net/snmp (a
// header line of names, then a line of values).
func parseSNMPUDP(b []byte, field string) (int64, error) {
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == field && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("proc snmp: no Udp %s", field)
}

// readUDPSocketDrops returns the drops counter of the UDP sockets bound to
// 127.0.0.1:port or any address:port (/proc/net/udp, last column): the
// datagrams a full receive buffer turned away.
func readUDPSocketDrops(port int) (int64, error) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, err
	}
	return parseUDPSocketDrops(b, port), nil
}

func parseUDPSocketDrops(b []byte, port int) int64 {
	var total int64
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], want) {
			continue
		}
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err == nil {
			total += n
		}
	}
	return total
}
