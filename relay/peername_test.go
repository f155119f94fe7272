package relay

import "testing"

// TestPeerNameBoundToCertificate: a peer whose certificate the cluster CA
// issued to "mallory" but whose hello claims to be node "b" gets no link
// with a, whether a dials it or it dials a; a counts the refusals. Before
// the hello name was checked against the certificate, the link came up and
// the impostor received b's rooms' traffic.
func TestPeerNameBoundToCertificate(t *testing.T) {
	ca := newTestCA(t)
	a := startNode(t, ca, "a")
	impostor := startNode(t, ca, "b", func(c *Config) {
		c.ServerTLS, c.ClientTLS = tlsPair(issue(t, ca, "mallory"), ca.pool)
	})
	a.attach(t, "c", impostor)
	impostor.attach(t, "c", a)
	waitFor(t, "a refuses the impostor twice", func() bool { return a.relay.Stats().LinksRefused >= 2 })
	if n := a.relay.Stats().Links; n != 0 {
		t.Fatalf("a has %d links with the impostor", n)
	}
	if n := a.relay.Stats().LinksOpened; n != 0 {
		t.Fatalf("a opened %d links with the impostor", n)
	}
}
