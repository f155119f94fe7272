// Package turn is meshmeet's embedded TURN server (DESIGN.md section 5): a
// wrapper around github.com/pion/turn/v5 that is safe by default.
//
//   - Credentials follow the TURN REST scheme: username "expiry:id",
//     password base64(HMAC-SHA1(secret, username)). CredentialsFor mints
//     them for a participant's session ("expiry:kid.session"); EndSession
//     closes the session's allocations and refuses its credentials. The
//     server checks the expiry on Allocate and lets a live allocation be
//     refreshed for RefreshGrace after it (see Config).
//   - Peers are the media addresses of the cluster's bridges (SetBridges)
//     and the ranges the operator opens; everything else is refused.
//     Beneath that, a deny list is the floor an opened range must pass:
//     loopback, private, CGNAT, link-local, multicast, broadcast, reserved
//     and documentation ranges, IPv6 ULA, link-local and site-local, and
//     every IPv4-in-IPv6 encoding reduced to IPv4 first (Policy). The
//     node's service ports are denied on every address but a bridge's. The
//     policy is applied on CreatePermission and ChannelBind and again on
//     every relayed packet in both directions.
//   - TCP relay allocations (RFC 6062) are refused with 442.
//   - Allocations are capped per participant's session and in total,
//     bandwidth per allocation, and the answers an unauthenticated source
//     gets (401 and other errors, Binding) per source address or IPv6 /64.
//     Every refusal is counted in Stats; logs never carry an address,
//     username or secret.
//
// pion/turn v5 is the maintained successor of pion/turn v4 (which pion/webrtc
// v4 also links).
package turn
