//go:build linux

package bench

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// pinPlan is where a single local node and the generator run: the node
// alone on the last CPU the bench may use, the generator on the others, so
// that the node's CPU per packet is not blurred by the generator's and the
// raw floor can be measured on the node's core.
type pinPlan struct {
	node  int   // the node's CPU
	gen   []int // the generator's CPUs
	prev  unix.CPUSet
	procs int // GOMAXPROCS before pinning
}

// planPin returns the plan for one local node, or nil when the bench may
// use fewer than two CPUs or taskset is missing (then nothing is pinned).
func planPin() *pinPlan {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil
	}
	return &pinPlan{node: cpus[len(cpus)-1], gen: cpus[:len(cpus)-1], prev: set}
}

// pinGenerator moves every thread of this process to the generator's CPUs
// (threads started later inherit it) and sets GOMAXPROCS to their number.
func (p *pinPlan) pinGenerator() {
	var set unix.CPUSet
	for _, c := range p.gen {
		set.Set(c)
	}
	setAllThreads(&set)
	p.procs = runtime.GOMAXPROCS(len(p.gen))
}

// unpin gives the process back the CPUs it had.
func (p *pinPlan) unpin() {
	setAllThreads(&p.prev)
	if p.procs > 0 {
		runtime.GOMAXPROCS(p.procs)
	}
}

func setAllThreads(set *unix.CPUSet) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		_ = unix.SchedSetaffinity(0, set)
		return
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, set) // a thread that just exited: nothing to pin
		}
	}
}

// measureFloor measures the raw floor on CPU cpu: one goroutine locked to a
// thread pinned there sends a datagram of size bytes over loopback UDP and
// receives it, n times per round; the result is the median over rounds of
// the thread's CPU time per datagram (send plus receive, including the
// kernel's loopback delivery, which runs in the sender's context), in µs.
func measureFloor(cpu, size, n, rounds int) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var prev unix.CPUSet
	if err := unix.SchedGetaffinity(0, &prev); err != nil {
		return 0, err
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return 0, err
	}
	defer unix.SchedSetaffinity(0, &prev)

	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer a.Close()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	to := c.LocalAddr().(*net.UDPAddr).AddrPort()
	out, in := make([]byte, size), make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	var per []float64
	for r := 0; r < rounds+1; r++ {
		start := threadCPU()
		for i := 0; i < n; i++ {
			if _, err := a.WriteToUDPAddrPort(out, to); err != nil {
				return 0, err
			}
			if _, _, err := c.ReadFromUDPAddrPort(in); err != nil {
				return 0, err
			}
		}
		if r > 0 { // the first round warms up
			per = append(per, float64(threadCPU()-start)/float64(n)/1e3)
		}
	}
	sort.Float64s(per)
	return per[len(per)/2], nil
}

// threadCPU is the calling thread's CPU time in ns.
func threadCPU() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// start starts cmd on the node's CPU: the child inherits the affinity of
// the thread that forks it, and keeps it across exec.
func (p *pinPlan) start(cmd *exec.Cmd) error {
	if p == nil {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var prev, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &prev); err != nil {
		return cmd.Start()
	}
	set.Set(p.node)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return cmd.Start()
	}
	defer unix.SchedSetaffinity(0, &prev)
	return cmd.Start()
}
