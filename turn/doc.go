// Package turn is meshmeet's embedded TURN server (DESIGN.md section 5): a
// wrapper around github.com/pion/turn/v5 that is safe by default.
//
//   - Credentials follow the TURN REST scheme: username "expiry:id",
//     password base64(HMAC-SHA1(secret, username)). Credentials mints them;
//     the server checks the expiry on Allocate and lets a live allocation be
//     refreshed for RefreshGrace after it (see Config).
//   - Peers are denied by default: loopback, private, CGNAT, link-local,
//     multicast, broadcast, reserved and documentation ranges, IPv6 ULA,
//     link-local and site-local, and every IPv4-in-IPv6 encoding reduced to
//     IPv4 first (Policy). The node's service ports are denied on every
//     address. The policy is applied on CreatePermission and ChannelBind and
//     again on every relayed packet in both directions.
//   - TCP relay allocations (RFC 6062) are refused with 442.
//   - Allocations are capped per user and in total, bandwidth per
//     allocation, and 401 answers per source address. Every refusal is
//     counted in Stats; logs never carry an address, username or secret.
//
// pion/turn v5 is the maintained successor of pion/turn v4 (which pion/webrtc
// v4 also links).
package turn
