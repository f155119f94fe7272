package bridge

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func goroutines() int { return runtime.NumGoroutine() }

// checkGoroutines polls until the number of goroutines is back to before,
// then fails with the stacks of the leftovers.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			var leaked []string
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "testing.") && !strings.Contains(g, "pion") && !strings.Contains(g, "bridge.") {
					continue
				}
				leaked = append(leaked, g)
			}
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
