package signaling

import (
	"net/http"
	"net/netip"
	"testing"
)

// TestSourceOf: IPv4 by address, IPv6 by /64, IPv4-mapped IPv6 as IPv4;
// X-Forwarded-For only from a trusted proxy, and only up to the first
// address that is not one.
func TestSourceOf(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}
	for _, tc := range []struct{ remote, xff, want string }{
		{"192.0.2.7:5000", "", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:5000", "", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "", "fe80::/64"},
		// Anyone can send X-Forwarded-For: ignored from an untrusted peer.
		{"192.0.2.7:5000", "198.51.100.1", "192.0.2.7/32"},
		// From a trusted proxy: the last entry the proxy wrote.
		{"10.0.0.5:40000", "198.51.100.1", "198.51.100.1/32"},
		{"[fd00::5]:40000", "2001:db8:9:9::1", "2001:db8:9:9::/64"},
		// A client's own X-Forwarded-For ahead of the proxy's entry is not
		// believed; trusted hops are walked past.
		{"10.0.0.5:40000", "203.0.113.66, 198.51.100.1, 10.0.0.9", "198.51.100.1/32"},
		// A garbled entry stops the walk at the last good hop.
		{"10.0.0.5:40000", "198.51.100.1, garbage", "10.0.0.5/32"},
		{"10.0.0.5:40000", "", "10.0.0.5/32"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		got, ok := sourceOf(r, proxies)
		if !ok || got != netip.MustParsePrefix(tc.want) {
			t.Errorf("sourceOf(%s, XFF %q) = %v %v, want %s", tc.remote, tc.xff, got, ok, tc.want)
		}
	}
	a, _ := sourceOf(&http.Request{RemoteAddr: "[2001:db8:1:2::1]:1"}, nil)
	b, _ := sourceOf(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:1"}, nil)
	if a == b {
		t.Error("two /64s share a source")
	}
	if _, ok := sourceOf(&http.Request{RemoteAddr: "not an address"}, nil); ok {
		t.Error("a malformed address has a source")
	}
}

// TestSourcesForget: an entry is dropped once its source holds nothing and
// its join budget is whole, so the table does not grow with every address
// ever seen.
func TestSourcesForget(t *testing.T) {
	s := newSources(Config{MaxPerSource: 2, MaxUnjoined: 10, SourceJoinRate: 1, SourceJoinBurst: 5})
	src := netip.MustParsePrefix("192.0.2.1/32")
	if err := s.connect(src); err != nil {
		t.Fatal(err)
	}
	s.joined()
	if err := s.addParticipant(src); err != nil {
		t.Fatal(err)
	}
	s.disconnect(src, false)
	s.removeParticipant(src)
	if len(s.m) != 0 || s.unjoined != 0 {
		t.Fatalf("%d entries, %d unjoined left after everything was given back", len(s.m), s.unjoined)
	}
	// A source that spent joins stays until its budget refills.
	s.join(src)
	if len(s.m) != 1 {
		t.Fatal("a source with a spent join budget was forgotten")
	}
	// At the bound, idle entries are forgiven their spent budgets.
	for i := range maxSources - 1 {
		s.join(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	if len(s.m) != maxSources {
		t.Fatalf("%d entries, want %d", len(s.m), maxSources)
	}
	s.join(netip.MustParsePrefix("198.51.100.1/32"))
	if len(s.m) != 1 {
		t.Fatalf("%d entries after the bound was reached, want 1", len(s.m))
	}
}
