package turn

import (
	"fmt"
	"net/netip"
)

// Policy decides which peer addresses the server relays to. It denies by
// default every address that is not a plain global unicast address, reduces
// every IPv4-in-IPv6 encoding to IPv4 before it checks, and denies the node's
// own service ports on every address. Operators open ranges with AllowPeers
// (--turn-allow-peer) and single addresses with AllowAddrs.
//
// A Policy is immutable after NewPolicy and safe for concurrent use.
type Policy struct {
	allow      []netip.Prefix      // operator-opened ranges (masked)
	allowAddrs []netip.AddrPort    // exact exceptions, addresses reduced
	allowIPs   map[netip.Addr]bool // the addresses of allowAddrs
	denyPorts  [65536 / 64]uint64  // bitset of service ports
}

// NewPolicy returns a policy that denies the default ranges except allow,
// permits the exact addresses allowAddrs (for example the node's own bridge
// port in dev mode, see docs/turn.md), and denies denyPorts on every address.
func NewPolicy(allow []netip.Prefix, allowAddrs []netip.AddrPort, denyPorts []uint16) *Policy {
	p := &Policy{allowIPs: map[netip.Addr]bool{}}
	for _, pr := range allow {
		p.allow = append(p.allow, pr.Masked())
	}
	for _, ap := range allowAddrs {
		ip, _ := reduce(ap.Addr())
		ap = netip.AddrPortFrom(ip, ap.Port())
		p.allowAddrs = append(p.allowAddrs, ap)
		p.allowIPs[ip] = true
	}
	for _, port := range denyPorts {
		p.denyPorts[port/64] |= 1 << (port % 64)
	}
	return p
}

// ParsePrefix parses a --turn-allow-peer value: a CIDR prefix or a single
// address. IPv4-mapped IPv6 prefixes are reduced to IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	if pr, err := netip.ParsePrefix(s); err == nil {
		if pr.Addr().Is4In6() && pr.Bits() >= 96 {
			pr = netip.PrefixFrom(pr.Addr().Unmap(), pr.Bits()-96)
		}
		return pr.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("turn: %q is neither a CIDR prefix nor an address", s)
	}
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// Check returns nil if the server may relay to ip:port, or an error wrapping
// ErrPeerDenied that names the rule (never the address).
func (p *Policy) Check(ap netip.AddrPort) error {
	ip, reason := reduce(ap.Addr())
	port := ap.Port()
	if reason == "" && !ip.IsValid() {
		reason = "invalid"
	}
	if reason == "" && p.isAllowAddr(netip.AddrPortFrom(ip, port)) {
		return nil
	}
	if port == 0 {
		return fmt.Errorf("%w: port 0", ErrPeerDenied)
	}
	if p.denyPorts[port/64]&(1<<(port%64)) != 0 {
		return fmt.Errorf("%w: service port", ErrPeerDenied)
	}
	if err := p.checkIP(ip, reason); err != nil {
		return err
	}
	return nil
}

// CheckIP is Check without a port, for CreatePermission and ChannelBind,
// whose permissions are per address (RFC 8656 section 9): it allows ip if
// some port on it may be reached. Every relayed packet is checked with Check.
func (p *Policy) CheckIP(addr netip.Addr) error {
	ip, reason := reduce(addr)
	if reason == "" && !ip.IsValid() {
		reason = "invalid"
	}
	if reason == "" && p.allowIPs[ip] {
		return nil
	}
	return p.checkIP(ip, reason)
}

func (p *Policy) isAllowAddr(ap netip.AddrPort) bool {
	for _, a := range p.allowAddrs {
		if a == ap {
			return true
		}
	}
	return false
}

// checkIP applies the hard denials, the operator's allow list and the
// default deny list to ip, an address reduced by reduce.
func (p *Policy) checkIP(ip netip.Addr, reason string) error {
	if reason != "" {
		return fmt.Errorf("%w: %s", ErrPeerDenied, reason)
	}
	// Never relayed, whatever the allow list says: sending to an
	// unspecified address reaches this host, and multicast or broadcast
	// reach every host of a link.
	if r := hardDenied(ip); r != "" {
		return fmt.Errorf("%w: %s", ErrPeerDenied, r)
	}
	// The allow list is matched against the reduced address only, so that
	// allowing an IPv6 range never opens the IPv4 addresses encoded in it.
	for _, pr := range p.allow {
		if pr.Contains(ip) {
			return nil
		}
	}
	if r := defaultDenied(ip); r != "" {
		return fmt.Errorf("%w: %s", ErrPeerDenied, r)
	}
	return nil
}

// reduce strips zones and turns every IPv4-in-IPv6 encoding into the IPv4
// address it carries: IPv4-mapped (::ffff:0:0/96), IPv4-translated
// (::ffff:0:0:0/96, RFC 2765), IPv4-compatible (::/96, deprecated), 6to4
// (2002::/16) and the NAT64 well-known prefix (64:ff9b::/96). Encodings
// whose IPv4 part cannot be found reliably (Teredo, local-use NAT64
// 64:ff9b:1::/48) come back with a denial reason.
func reduce(ip netip.Addr) (netip.Addr, string) {
	ip = ip.WithZone("").Unmap()
	if !ip.Is6() {
		return ip, ""
	}
	b := ip.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[i+1], b[i+2], b[i+3]}) }
	zero := func(from, to int) bool {
		for _, x := range b[from:to] {
			if x != 0 {
				return false
			}
		}
		return true
	}
	switch {
	case zero(0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0:
		return v4(12), "" // ::ffff:0:a.b.c.d, IPv4-translated
	case ip == netip.IPv6Loopback() || ip == netip.IPv6Unspecified():
		return ip, ""
	case zero(0, 12):
		return v4(12), "" // ::a.b.c.d, IPv4-compatible; :: and ::1 become 0.0.0.0/8
	case b[0] == 0x20 && b[1] == 0x02:
		return v4(2), "" // 2002:AABB:CCDD::/48, 6to4
	case b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(4, 12):
		return v4(12), "" // 64:ff9b::a.b.c.d, NAT64 well-known prefix
	case b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1:
		return ip, "NAT64 local-use prefix"
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0:
		return ip, "Teredo"
	}
	return ip, ""
}

var (
	v4Unspecified = netip.MustParsePrefix("0.0.0.0/8")
	v4Multicast   = netip.MustParsePrefix("224.0.0.0/4")
	v4Broadcast   = netip.MustParseAddr("255.255.255.255")
	v6Unspecified = netip.IPv6Unspecified()
	v6Multicast   = netip.MustParsePrefix("ff00::/8")
)

func hardDenied(ip netip.Addr) string {
	switch {
	case ip.Is4() && v4Unspecified.Contains(ip), ip == v6Unspecified:
		return "unspecified"
	case v4Multicast.Contains(ip), v6Multicast.Contains(ip):
		return "multicast"
	case ip == v4Broadcast:
		return "broadcast"
	}
	return ""
}

type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// deniedV4 and deniedV6 are the default deny lists (IANA special-purpose
// address registries, RFC 6890 and successors). Addresses are reduced
// before they are checked, so IPv4 ranges also cover their IPv6 encodings.
var deniedV4 = []deniedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}, // includes 169.254.169.254, cloud metadata
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"}, // includes 192.0.0.192/32 (Oracle metadata)
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112"},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("192.175.48.0/24"), "AS112"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
}

var deniedV6 = []deniedRange{
	{netip.MustParsePrefix("fc00::/7"), "ULA"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments"}, // Teredo, ORCHID, benchmarking…
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("5f00::/16"), "SRv6 SIDs"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 local-use prefix"},
}

var globalUnicastV6 = netip.MustParsePrefix("2000::/3")

func defaultDenied(ip netip.Addr) string {
	if ip.Is4() {
		for _, d := range deniedV4 {
			if d.prefix.Contains(ip) {
				return d.reason
			}
		}
		return ""
	}
	for _, d := range deniedV6 {
		if d.prefix.Contains(ip) {
			return d.reason
		}
	}
	if ip == netip.IPv6Loopback() {
		return "loopback"
	}
	if !globalUnicastV6.Contains(ip) {
		return "reserved" // all of IPv6 outside 2000::/3 is unassigned or special
	}
	return ""
}
