package turn

import (
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
)

// Policy decides which peer addresses the server relays to. TURN exists so
// that participants reach this cluster's bridges, so by default it relays
// only to the bridges' media addresses (exact address and port, replaced by
// SetBridges as the cluster changes) and to the ranges the operator opens
// (--turn-allow-peer); everything else is refused. Beneath that, the deny
// list is the floor that an allowed range must get past: it denies every
// address that is not a plain global unicast address unless a range opens
// it, reduces every IPv4-in-IPv6 encoding to IPv4 before it checks, and
// denies the node's own service ports on every address.
//
// A Policy is safe for concurrent use; it is immutable after NewPolicy but
// for its bridge set, which SetBridges replaces whole.
type Policy struct {
	allow     []netip.Prefix     // operator-opened ranges (masked)
	denyPorts [65536 / 64]uint64 // bitset of service ports

	bridges atomic.Pointer[bridgeSet]
}

// bridgeSet is the bridges' media addresses, reduced. Immutable.
type bridgeSet struct {
	addrs []netip.AddrPort
	ips   map[netip.Addr]bool // the addresses of addrs
	gen   uint64              // bumped by every SetBridges that changes the set
}

// NewPolicy returns a policy that relays to the bridges' media addresses
// bridges (exact address and port, reachable whatever the deny list says:
// in dev mode the node's own RTC port on 127.0.0.1, see docs/turn.md) and to
// the ranges allow, denies the default special ranges that allow does not
// open, and denies denyPorts on every address but the bridges'.
func NewPolicy(allow []netip.Prefix, bridges []netip.AddrPort, denyPorts []uint16) *Policy {
	p := &Policy{}
	for _, pr := range allow {
		p.allow = append(p.allow, pr.Masked())
	}
	for _, port := range denyPorts {
		p.denyPorts[port/64] |= 1 << (port % 64)
	}
	p.bridges.Store(newBridgeSet(bridges, 0))
	return p
}

// maxBridges bounds the bridge set: a cluster of more nodes is far beyond
// what meshmeet is built for, and the set is scanned per new peer.
const maxBridges = 4096

func newBridgeSet(addrs []netip.AddrPort, gen uint64) *bridgeSet {
	b := &bridgeSet{ips: map[netip.Addr]bool{}, gen: gen}
	for _, ap := range addrs {
		ip, reason := reduce(ap.Addr())
		if reason != "" || !ip.IsValid() || hardDenied(ip) != "" || ap.Port() == 0 || len(b.addrs) >= maxBridges {
			continue // never a bridge: unspecified, multicast, broadcast, port 0
		}
		ap = netip.AddrPortFrom(ip, ap.Port())
		if !slices.Contains(b.addrs, ap) {
			b.addrs = append(b.addrs, ap)
			b.ips[ip] = true
		}
	}
	slices.SortFunc(b.addrs, func(x, y netip.AddrPort) int { return x.Compare(y) })
	return b
}

// SetBridges replaces the bridges' media addresses (see NewPolicy). Live
// allocations see the change at their next packet. It reports whether the
// set changed.
func (p *Policy) SetBridges(addrs []netip.AddrPort) bool {
	for {
		old := p.bridges.Load()
		nb := newBridgeSet(addrs, old.gen+1)
		if slices.Equal(nb.addrs, old.addrs) {
			return false
		}
		if p.bridges.CompareAndSwap(old, nb) {
			return true
		}
	}
}

// Bridges returns the bridges' media addresses, reduced and sorted.
func (p *Policy) Bridges() []netip.AddrPort {
	return slices.Clone(p.bridges.Load().addrs)
}

// generation changes whenever the bridge set does; callers that cache a
// verdict key it with the generation.
func (p *Policy) generation() uint64 { return p.bridges.Load().gen }

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
	return denial(p.verdict(ap))
}

// verdict is Check as a reason ("" allows) that costs no allocation: it
// runs on every relayed packet that misses the per-allocation cache.
func (p *Policy) verdict(ap netip.AddrPort) string {
	ip, reason := reduce(ap.Addr())
	port := ap.Port()
	if reason == "" && !ip.IsValid() {
		reason = "invalid"
	}
	if reason == "" && p.isBridge(netip.AddrPortFrom(ip, port)) {
		return ""
	}
	switch {
	case reason != "":
		return reason
	case port == 0:
		return "port 0"
	case p.denyPorts[port/64]&(1<<(port%64)) != 0:
		return "service port"
	}
	return p.checkIP(ip, true)
}

// CheckIP is Check without a port, for CreatePermission and ChannelBind,
// whose permissions are per address (RFC 8656 section 9): it allows ip if
// some port on it may be reached. Every relayed packet is checked with Check.
func (p *Policy) CheckIP(addr netip.Addr) error {
	ip, reason := reduce(addr)
	switch {
	case reason != "":
		return denial(reason)
	case !ip.IsValid():
		return denial("invalid")
	case p.bridges.Load().ips[ip]:
		return nil
	}
	return denial(p.checkIP(ip, true))
}

// CheckRange is the deny list alone, without the restriction to the
// cluster's bridges: it refuses the special ranges that no allowed range
// opens (every IPv4-in-IPv6 encoding reduced first) and passes every
// global unicast address. It is the floor a remote ICE candidate must pass
// (the bridge dials nobody the TURN server could not reach).
func (p *Policy) CheckRange(addr netip.Addr) error {
	ip, reason := reduce(addr)
	switch {
	case reason != "":
		return denial(reason)
	case !ip.IsValid():
		return denial("invalid")
	}
	return denial(p.checkIP(ip, false))
}

func denial(reason string) error {
	if reason == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrPeerDenied, reason)
}

func (p *Policy) isBridge(ap netip.AddrPort) bool {
	b := p.bridges.Load()
	if !b.ips[ap.Addr()] {
		return false
	}
	_, found := slices.BinarySearchFunc(b.addrs, ap, func(x, y netip.AddrPort) int { return x.Compare(y) })
	return found
}

// checkIP applies the hard denials, the operator's allow list and the
// default deny list to ip, a valid address reduced by reduce, and returns
// the reason it is denied ("" allows); with onlyAllowed, an address that no
// allowed range holds is denied too (the caller has checked the bridges).
func (p *Policy) checkIP(ip netip.Addr, onlyAllowed bool) string {
	// Never relayed, whatever the allow list says: sending to an
	// unspecified address reaches this host, and multicast or broadcast
	// reach every host of a link.
	if r := hardDenied(ip); r != "" {
		return r
	}
	// The allow list is matched against the reduced address only, so that
	// allowing an IPv6 range never opens the IPv4 addresses encoded in it.
	for _, pr := range p.allow {
		if pr.Contains(ip) {
			return ""
		}
	}
	if r := defaultDenied(ip); r != "" {
		return r
	}
	if onlyAllowed {
		return "not a bridge of this cluster"
	}
	return ""
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
