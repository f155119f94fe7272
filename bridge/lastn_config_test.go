package bridge

import "testing"

// TestLastNConfig: a room's N is SetLastN's, else Config.LastN, else
// DefaultLastN; negative forwards all video; values are bounded.
func TestLastNConfig(t *testing.T) {
	for _, c := range []struct{ cfg, set, want int }{
		{0, 0, DefaultLastN},
		{3, 0, 3},
		{-1, 0, -1},
		{-7, 0, -1},
		{10_000, 0, maxLastN},
		{3, 5, 5},
		{3, -1, -1},
		{-1, 2, 2},
	} {
		b := unstartedBridge(t)
		b.cfg.LastN = c.cfg
		r := b.NewRoom("lastn", RoomEvents{})
		if c.set != 0 {
			r.SetLastN(c.set)
		}
		if got := r.lastNValue(); got != c.want {
			t.Errorf("Config.LastN %d, SetLastN %d: N = %d, want %d", c.cfg, c.set, got, c.want)
		}
		r.Close()
	}
}
