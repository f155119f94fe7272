package mesh

import "errors"

var (
	// ErrRoomNotFound is returned by Leave for a room the directory does
	// not hold.
	ErrRoomNotFound = errors.New("room not found")
	// ErrUnavailable means the directory cannot reach a quorum: no new room
	// can be created or joined until it can. Meetings already running go on.
	ErrUnavailable = errors.New("directory unavailable")
)
