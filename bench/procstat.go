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
