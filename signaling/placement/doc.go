// Package placement decides which bridge a joining participant goes to
// (DESIGN.md section 4, issue 12 item 2). Decide is a pure function of
// its Input: no clock, no randomness, no I/O, so every rule is a table
// test and signaling can call it on each join.
//
// The rule, in order:
//  1. Regions are ordered by the client's measured RTTs when it sent
//     any, otherwise the region of the node it reached comes first; the
//     rest follow by RTT, then by distance, then by name. The reached
//     region's RTT counts Input.RTTSlack lower: it keeps the client
//     unless another region measures more than that nearer. When the
//     client measured other regions but not the reached one (its probe
//     was lost), the reached region counts as if it measured the best
//     RTT measured to any region, so it keeps the client by the same
//     slack; other unmeasured regions come after every measured one. A
//     room pinned to regions considers only those.
//  2. In the first region with room to spare, the bridge that already
//     holds the meeting is chosen unless its stress is at or over
//     Input.Threshold.
//  3. Otherwise the least stressed bridge of that region. Stress is the
//     largest of participants, CPU and bitrate over the bridge's
//     capacity, each corrected for the joins placed on it since its last
//     gossiped load report, so a join storm spreads over the region
//     instead of piling onto the node that looked idlest.
//     The node the client reached (Input.ReachedBridge) ranks
//     Input.ReachedSlack lower and wins ties: equally loaded bridges do
//     not redirect clients to each other.
//  4. A region is full when every live bridge in it has stress >= 1;
//     the next region is then tried. A pinned room fails with
//     ErrPinnedFull instead of leaving its regions.
//
// Draining bridges are never chosen. The client's lat/lon only breaks
// ties (equal stress, or regions with no RTT); it never overrides an RTT
// or a load.
package placement
