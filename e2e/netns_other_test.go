//go:build !linux

package e2e

import "testing"

const (
	envServer   = "MESHMEET_E2E_SERVER"
	envChromium = "MESHMEET_CHROMIUM"
)

// inNamespace skips: network namespaces exist only on Linux, and the
// browser test runs only inside one.
func inNamespace(t *testing.T, name string) bool {
	t.Skipf("skipping %s: it needs a Linux network namespace with only loopback", name)
	return false
}
