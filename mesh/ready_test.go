package mesh

import "testing"

// TestClusterReadyFollowsQuorum: Ready (what /readyz reports) is true while
// the directory can reach a leader and false on the side of a partition
// that holds no majority of voters, for a voter and a non-voter alike.
func TestClusterReadyFollowsQuorum(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.start("x", false, 3, "")
	all := []string{"n0", "n1", "n2", "x"}
	l := tc.formed(all...)
	ready := func(names ...string) func() bool {
		return func() bool {
			for _, name := range names {
				if !tc.node(name).Ready() {
					return false
				}
			}
			return true
		}
	}
	notReady := func(names ...string) func() bool {
		return func() bool {
			for _, name := range names {
				if tc.node(name).Ready() {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "every node ready", ready(all...))

	// The leader and the non-voter alone: no quorum on their side.
	cut := l.cfg.NodeName
	var majority []string
	for _, name := range []string{"n0", "n1", "n2"} {
		if name != cut {
			majority = append(majority, name)
		}
	}
	tc.net.partition(cut, "x")
	eventually(t, "the minority side reports not ready", notReady(cut, "x"))
	tc.leader(majority...)
	eventually(t, "the majority side stays ready", ready(majority...))

	tc.net.heal()
	eventually(t, "every node ready again after the heal", ready(all...))
}
