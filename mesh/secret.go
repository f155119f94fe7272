package mesh

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// secretPrefix starts every cluster secret, so a stray secret is recognisable
// and a wrong file (a certificate, a key) is refused with a clear error.
const secretPrefix = "meshmeet-cs1:"

// secretLen is the number of random bytes in a cluster secret.
const secretLen = 32

// Secret is the one cluster secret (DESIGN.md section 9). Its String method
// never prints it.
type Secret struct{ b [secretLen]byte }

// ErrBadSecret is returned for a cluster secret that does not parse. The
// error never contains the secret.
var ErrBadSecret = errors.New("cluster secret: not a meshmeet cluster secret (make one with `meshmeet cluster init`)")

// NewSecret returns a fresh random cluster secret.
func NewSecret() Secret {
	var s Secret
	rand.Read(s.b[:])
	return s
}

// Encode returns the secret's text form, for `cluster init` only.
func (s Secret) Encode() string {
	return secretPrefix + base64.RawURLEncoding.EncodeToString(s.b[:])
}

// String hides the secret from fmt and slog.
func (Secret) String() string { return "[cluster secret]" }

// ParseSecret parses the text form, ignoring surrounding white space.
func ParseSecret(text string) (Secret, error) {
	var s Secret
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, secretPrefix)
	if !ok || base64.RawURLEncoding.DecodedLen(len(rest)) != secretLen {
		return s, ErrBadSecret
	}
	if _, err := base64.RawURLEncoding.Decode(s.b[:], []byte(rest)); err != nil {
		return s, ErrBadSecret
	}
	return s, nil
}

// Keys are the keys derived from the cluster secret with HKDF-SHA256, one
// label each. None of them can be turned back into the secret or another key.
type Keys struct {
	// GossipKey encrypts memberlist gossip (AES-256-GCM).
	GossipKey []byte
	// GossipLabel binds gossip to this cluster: memberlist authenticates it
	// with every packet and drops packets of another label.
	GossipLabel string
	// TURNSecret is the TURN REST shared secret.
	TURNSecret []byte
	// RoomKey is the HMAC key that turns room names into RoomKeys.
	RoomKey []byte
	// AdminToken authenticates admin requests (`cluster status`).
	AdminToken []byte
	// CAKey is the cluster CA's Ed25519 key: every node issues itself a
	// short-lived certificate with it for mutual TLS on raft and relay links.
	CAKey ed25519.PrivateKey
}

// DeriveKeys derives every cluster key from the secret.
func DeriveKeys(s Secret) Keys {
	d := func(label string, n int) []byte {
		k, err := hkdf.Key(sha256.New, s.b[:], nil, "meshmeet/v1/"+label, n)
		if err != nil {
			panic("mesh: hkdf: " + err.Error()) // only for n out of range
		}
		return k
	}
	return Keys{
		GossipKey:   d("gossip", 32),
		GossipLabel: "meshmeet-" + hex.EncodeToString(d("cluster-label", 6)),
		TURNSecret:  d("turn-rest", 32),
		RoomKey:     d("room-name-hmac", 32),
		AdminToken:  d("admin-token", 32),
		CAKey:       ed25519.NewKeyFromSeed(d("cluster-ca", ed25519.SeedSize)),
	}
}

// AdminAuthorization is the Authorization header value of an admin request.
func AdminAuthorization(token []byte) string {
	return "Bearer " + base64.RawURLEncoding.EncodeToString(token)
}
