//go:build unix

package mesh

import (
	"syscall"
	"time"
)

// cpuMeter measures this process's CPU use between two samples.
type cpuMeter struct {
	last     time.Duration
	lastWall time.Time
}

// sample returns the cores used since the previous sample.
func (m *cpuMeter) sample() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	var cores float64
	if !m.lastWall.IsZero() {
		if wall := now.Sub(m.lastWall); wall > 0 {
			cores = float64(used-m.last) / float64(wall)
		}
	}
	m.last, m.lastWall = used, now
	return max(cores, 0)
}
