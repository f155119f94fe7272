package mesh

import (
	"testing"

	"github.com/hashicorp/memberlist"
)

// realMeta is the metadata of a voter as a production node gossips it.
func realMeta() NodeMeta {
	return NodeMeta{
		Region: "eu-central", HasGeo: true, Lat: 50.11, Lon: 8.68,
		SignalingURL: "https://eu-1.meet.example.org:443", WebRTCAddr: "203.0.113.7:7882",
		RelayAddr: "203.0.113.7:7443", TURNAddr: "203.0.113.7:3478",
		Capacity: 1000, Participants: 412, CPU: 1.37, BitrateBps: 183_000_000, Cores: 16,
		RaftID: "eu-1.9f3a0c2d", RaftAddr: "203.0.113.7:7947", Voter: true, InCluster: true,
	}
}

// FuzzDecodeMeta: gossip metadata comes from other nodes (authenticated by
// the gossip key, but possibly of another version or buggy). Whatever
// decodeMeta accepts re-encodes to metadata it accepts again, unchanged.
func FuzzDecodeMeta(f *testing.F) {
	m := realMeta()
	f.Add(m.encode())
	m.Draining, m.Leaving, m.Voter, m.InCluster = true, true, false, false
	f.Add(m.encode())
	nonVoter := NodeMeta{Region: "local", SignalingURL: "http://127.0.0.1:7880", WebRTCAddr: "127.0.0.1:7882", RaftID: "x.00000000"}
	f.Add(nonVoter.encode())
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"rg":"a","RG":"b","la":1e-7,"cpu":1e6}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		enc := m.encode()
		if len(enc) > memberlist.MetaMaxSize {
			t.Fatalf("accepted metadata re-encodes to %d bytes", len(enc))
		}
		m2, err := decodeMeta(enc)
		if err != nil {
			t.Fatalf("re-encoded metadata rejected: %v (%q)", err, enc)
		}
		if m2 != m {
			t.Fatalf("decode→encode→decode differs:\n%+v\n%+v", m, m2)
		}
	})
}

// TestMetaCores: the gossiped core count round-trips and is bounded.
func TestMetaCores(t *testing.T) {
	m := realMeta()
	got, err := decodeMeta(m.encode())
	if err != nil || got.Cores != 16 {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	for _, bad := range []string{`{"co":-1}`, `{"co":65537}`} {
		if _, err := decodeMeta([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
