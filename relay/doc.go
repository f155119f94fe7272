// Package relay is the cascade between bridges: one QUIC connection per pair
// of nodes that share at least one meeting, carrying RTP in DATAGRAM frames
// and control (tracks, subscriptions, keyframe requests, NACKs, link
// statistics, opaque room messages) on one unidirectional stream each way.
//
// relay imports bridge only. It learns which peers hold a room from its
// caller (signaling, from the directory) and gets its TLS configuration from
// cmd (the cluster PKI that raft uses too). docs/relay.md describes the wire
// protocol; frame.go and control.go hold its constants.
package relay
