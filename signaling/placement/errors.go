package placement

import "errors"

var (
	// ErrNoBridge: no live, non-draining bridge is known at all.
	ErrNoBridge = errors.New("placement: no bridge available")
	// ErrFull: every eligible bridge in every region is at capacity.
	ErrFull = errors.New("placement: every bridge is full")
	// ErrPinnedFull: the room is pinned to regions (data residency) and
	// none of their bridges can take the participant; the room does not
	// spill to another region.
	ErrPinnedFull = errors.New("placement: pinned regions are full")
)
