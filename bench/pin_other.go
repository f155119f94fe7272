//go:build !linux

package bench

import (
	"errors"
	"os/exec"
)

// pinPlan: pinning is Linux only; elsewhere nothing is pinned and no floor
// is measured.
type pinPlan struct{ node int }

func planPin() *pinPlan                      { return nil }
func (p *pinPlan) pinGenerator()             {}
func (p *pinPlan) unpin()                    {}
func (p *pinPlan) start(cmd *exec.Cmd) error { return cmd.Start() }

func measureFloor(cpu, size, n, rounds int) (float64, error) {
	return 0, errors.New("bench: the raw floor is measured on Linux only")
}
