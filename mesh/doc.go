// Package mesh is the control plane: which nodes are alive (memberlist
// gossip) and which bridges hold each room (the room directory).
//
// It imports no sibling package and nothing of pion: the media path never
// waits on it. The room directory knows rooms only by RoomKey, an HMAC of the
// name; it never holds a room name, and nothing of it touches disk.
package mesh
