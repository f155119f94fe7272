package turn

import (
	"strings"
	"testing"
)

// TestRedact: pion's messages lose every address and quoted string before
// they reach a log.
func TestRedact(t *testing.T) {
	for _, msg := range []string{
		"permission denied for client 203.0.113.7:51234 to peer 10.0.0.1",
		"Failed to handle datagram: no allocation found [2001:db8::1]:3478:[::ffff:127.0.0.1]:49152",
		`Invalid time-windowed username "1700000000:alice"`,
		"ChannelBind rejected: peer fe80::1%eth0 already bound to channel 16384",
		"read udp 127.0.0.1:3478->198.51.100.9:40000: i/o timeout",
	} {
		got := redact(msg)
		for _, secret := range []string{"203.0.113", "51234", "10.0.0.1", "2001:db8", "127.0.0.1", "alice", "fe80", "198.51", "40000"} {
			if strings.Contains(got, secret) {
				t.Errorf("redact(%q) = %q keeps %q", msg, got, secret)
			}
		}
	}
}
