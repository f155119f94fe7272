// Package signaling is the control plane's one orchestrator: the HTTP server
// (web client, WebSocket signaling, health), the rooms as participants see
// them (who is in, chat, events) and the glue between a participant's
// WebSocket, the room directory (mesh) and the SFU (bridge).
//
// Room names and display names arrive here and go no further than the room's
// other participants: logs name a room by RoomKey.LogID and a participant by
// its random ID.
package signaling
