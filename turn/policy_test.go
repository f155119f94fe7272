package turn

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPolicyDefaults(t *testing.T) {
	p := NewPolicy(nil, nil, []uint16{7880, 3478})
	tests := []struct {
		addr  string
		allow bool
	}{
		// Public addresses, and their IPv6 encodings.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"::ffff:8.8.8.8", true},
		{"2606:4700:4700::1111", true},
		{"2002:0808:0808::1", true}, // 6to4 of 8.8.8.8
		{"64:ff9b::808:808", true},  // NAT64 of 8.8.8.8

		// IPv4 special ranges.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"10.255.255.255", false},
		{"100.64.0.1", false},
		{"100.127.255.254", false},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"169.254.169.254", false},
		{"169.254.1.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.192", false},
		{"192.0.2.1", false},
		{"192.88.99.1", false},
		{"192.168.1.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		// Just outside the ranges.
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"172.15.255.255", true},
		{"172.32.0.0", true},
		{"11.0.0.1", true},

		// IPv6 special ranges.
		{"::", false},
		{"::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"febf::1", false},
		{"fec0::1", false},
		{"ff02::1", false},
		{"ff05::1:3", false},
		{"2001:db8::1", false},
		{"3fff::1", false},
		{"100::1", false},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false}, // Teredo
		{"64:ff9b:1::a00:1", false},                     // local-use NAT64
		{"5f00::1", false},
		{"4000::1", false}, // outside 2000::/3

		// Every IPv4-in-IPv6 encoding of denied IPv4 addresses.
		{"::ffff:127.0.0.1", false},       // mapped
		{"::ffff:10.0.0.1", false},        // mapped
		{"::ffff:169.254.169.254", false}, // mapped
		{"::ffff:100.64.0.1", false},      // mapped
		{"::127.0.0.1", false},            // compatible
		{"::10.1.2.3", false},             // compatible
		{"::169.254.169.254", false},      // compatible
		{"::ffff:0:127.0.0.1", false},     // IPv4-translated
		{"::ffff:0:192.168.0.1", false},   // IPv4-translated
		{"2002:7f00:1::1", false},         // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::", false},       // 6to4 of 169.254.169.254
		{"2002:c0a8:101::1", false},       // 6to4 of 192.168.1.1
		{"2002:6440:1::", false},          // 6to4 of 100.64.0.1
		{"64:ff9b::7f00:1", false},        // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false},     // NAT64 of 169.254.169.254
		{"64:ff9b::a00:1", false},         // NAT64 of 10.0.0.1
		{"64:ff9b::ffff:ffff", false},     // NAT64 of broadcast
		{"::ffff:224.0.0.1", false},       // mapped multicast
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.addr)
			// The deny list alone.
			err := p.CheckRange(ip)
			if (err == nil) != tt.allow {
				t.Fatalf("CheckRange(%s) = %v, want allow=%v", tt.addr, err, tt.allow)
			}
			if err != nil && !errors.Is(err, ErrPeerDenied) {
				t.Fatalf("error %v is not ErrPeerDenied", err)
			}
			// With no bridge and no allowed range, TURN relays nowhere.
			if err := p.Check(netip.AddrPortFrom(ip, 40000)); !errors.Is(err, ErrPeerDenied) {
				t.Fatalf("Check(%s) = %v: relayed outside the cluster's bridges", tt.addr, err)
			}
			if err := p.CheckIP(ip); !errors.Is(err, ErrPeerDenied) {
				t.Fatalf("CheckIP(%s) = %v: relayed outside the cluster's bridges", tt.addr, err)
			}
			if !tt.allow {
				return
			}
			// A bridge on the address is reached on its port only; the
			// service ports stay denied on it.
			b := NewPolicy(nil, []netip.AddrPort{netip.AddrPortFrom(ip, 40000)}, []uint16{7880, 3478})
			if err := b.Check(netip.AddrPortFrom(ip, 40000)); err != nil {
				t.Fatalf("Check(bridge %s) = %v", tt.addr, err)
			}
			if err := b.CheckIP(ip); err != nil {
				t.Fatalf("CheckIP(bridge %s) = %v", tt.addr, err)
			}
			for _, port := range []uint16{7880, 3478, 0, 40001} {
				if err := b.Check(netip.AddrPortFrom(ip, port)); err == nil {
					t.Fatalf("Check(%s port %d) allowed a port that is not the bridge's", tt.addr, port)
				}
			}
		})
	}
}

func TestPolicyAllow(t *testing.T) {
	allow := []netip.Prefix{}
	for _, s := range []string{"10.1.0.0/16", "::ffff:192.168.5.0/120", "fd00:1::/32", "100.64.0.9", "0.0.0.0/0"} {
		pr, err := ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		allow = append(allow, pr)
	}
	rtc := netip.MustParseAddrPort("127.0.0.1:7882")
	p := NewPolicy(allow[:4], []netip.AddrPort{rtc}, []uint16{7880})
	tests := []struct {
		addr  string
		allow bool
	}{
		{"10.1.2.3:5000", true},
		{"[::ffff:10.1.2.3]:5000", true},
		{"[2002:a01:203::]:5000", true}, // 6to4 of 10.1.2.3 reduces into the allowed range
		{"10.2.0.1:5000", false},
		{"192.168.5.7:5000", true}, // mapped prefix reduced to 192.168.5.0/24
		{"192.168.6.7:5000", false},
		{"[fd00:1::5]:5000", true},
		{"[fd00:2::5]:5000", false},
		{"100.64.0.9:5000", true},
		{"100.64.0.10:5000", false},
		{"10.1.2.3:7880", false}, // service port, even in an allowed range
		// The dev-mode exception: the node's own RTC port on its own IP,
		// and nothing else there.
		{"127.0.0.1:7882", true},
		{"[::ffff:127.0.0.1]:7882", true},
		{"127.0.0.1:7880", false},
		{"127.0.0.1:7883", false},
		{"127.0.0.2:7882", false},
	}
	for _, tt := range tests {
		ap := netip.MustParseAddrPort(tt.addr)
		if err := p.Check(ap); (err == nil) != tt.allow {
			t.Errorf("Check(%s) = %v, want allow=%v", tt.addr, err, tt.allow)
		}
	}
	if p.CheckIP(netip.MustParseAddr("127.0.0.1")) != nil {
		t.Error("CheckIP(127.0.0.1) must allow: a port on it is allowed")
	}
	if p.CheckIP(netip.MustParseAddr("127.0.0.2")) == nil {
		t.Error("CheckIP(127.0.0.2) must deny")
	}

	// An allow-all list still never opens unspecified, multicast or broadcast.
	all := NewPolicy(allow[4:], nil, nil)
	for _, s := range []string{"0.0.0.0", "::", "224.0.0.251", "ff02::fb", "255.255.255.255", "::ffff:0.0.0.0"} {
		if all.Check(netip.AddrPortFrom(netip.MustParseAddr(s), 5000)) == nil {
			t.Errorf("allow 0.0.0.0/0 opened %s", s)
		}
	}
	if all.Check(netip.MustParseAddrPort("10.0.0.1:5000")) != nil {
		t.Error("allow 0.0.0.0/0 must open 10.0.0.1")
	}
	// Allowing all of IPv6 does not open IPv4 encoded in it.
	v6all := NewPolicy([]netip.Prefix{netip.MustParsePrefix("::/0")}, nil, nil)
	for _, s := range []string{"::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::7f00:1", "::127.0.0.1"} {
		if v6all.Check(netip.AddrPortFrom(netip.MustParseAddr(s), 5000)) == nil {
			t.Errorf("allow ::/0 opened %s", s)
		}
	}
}

func TestParsePrefixInvalid(t *testing.T) {
	for _, s := range []string{"", "10.0.0.0/33", "nope", "10.0.0.0/8/8", "fd00::/129"} {
		if _, err := ParsePrefix(s); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", s)
		}
	}
}

// TestPolicyVerdictNoAlloc: the per-packet check allocates nothing,
// whether it allows (a bridge, an allowed range) or denies (no bridge, a
// special range, a service port, an encoding).
func TestPolicyVerdictNoAlloc(t *testing.T) {
	p := NewPolicy([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		[]netip.AddrPort{netip.MustParseAddrPort("27.0.0.5:9999")}, []uint16{7880})
	peers := []netip.AddrPort{
		netip.MustParseAddrPort("27.0.0.5:9999"), netip.MustParseAddrPort("10.1.2.3:5000"),
		netip.MustParseAddrPort("8.8.8.8:53"), netip.MustParseAddrPort("127.0.0.1:5000"),
		netip.MustParseAddrPort("10.1.2.3:7880"), netip.MustParseAddrPort("[2002:7f00:1::1]:5000"),
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, ap := range peers {
			p.verdict(ap)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per round of checks", n)
	}
}
