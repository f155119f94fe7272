package signaling

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Token authentication (--auth jwt). A join carries a JWT in its token
// field; docs/security.md describes the claims and the checks.
const (
	// MinJWTSecret is the shortest HS256 secret accepted, in bytes.
	MinJWTSecret = 32
	// minRSABits is the smallest RSA public key accepted.
	minRSABits = 2048
	// DefaultJWTLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultJWTLeeway = 30 * time.Second
	// maxRegionPins bounds the regions claim.
	maxRegionPins = 16
)

// AnyRoom is the room claim of a token valid for every room.
const AnyRoom = "*"

// Claims are the claims of a meshmeet token.
type Claims struct {
	// Room is the room name the token is for, or AnyRoom. Required.
	Room string `json:"room"`
	// Moderator lets the holder moderate under strong moderation.
	Moderator bool `json:"moderator,omitempty"`
	// Name, when set, is the holder's display name; it replaces the one
	// the join carries.
	Name string `json:"name,omitempty"`
	// Regions, when set, pins the holder's media to these regions.
	Regions []string `json:"regions,omitempty"`
	jwt.RegisteredClaims
}

// AuthConfig configures an Authenticator. Exactly one of HMACSecret and
// PublicKey is set.
type AuthConfig struct {
	// HMACSecret verifies HS256 tokens; at least MinJWTSecret bytes.
	HMACSecret []byte
	// PublicKey verifies RS256 (*rsa.PublicKey, at least 2048 bits) or
	// EdDSA (ed25519.PublicKey) tokens.
	PublicKey crypto.PublicKey
	// Audience and Issuer, when set, must be the token's aud and iss.
	Audience, Issuer string
	// Leeway is the clock skew allowed on exp, nbf and iat
	// [DefaultJWTLeeway].
	Leeway time.Duration
}

// Authenticator verifies join tokens. Safe for concurrent use.
type Authenticator struct {
	parser *jwt.Parser
	method jwt.SigningMethod
	key    any
}

// ErrShortSecret: an HS256 secret shorter than MinJWTSecret.
var ErrShortSecret = fmt.Errorf("the JWT secret must be at least %d bytes", MinJWTSecret)

// NewAuthenticator checks cfg and pins the signing algorithm to the key's:
// HS256 for a secret, RS256 for an RSA key, EdDSA for an Ed25519 key.
// Tokens signed with any other algorithm, "none" included, are refused.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	a := &Authenticator{}
	switch {
	case cfg.HMACSecret != nil && cfg.PublicKey != nil:
		return nil, errors.New("give a JWT secret or a public key, not both")
	case cfg.HMACSecret != nil:
		if len(cfg.HMACSecret) < MinJWTSecret {
			return nil, ErrShortSecret
		}
		a.method, a.key = jwt.SigningMethodHS256, bytes.Clone(cfg.HMACSecret)
	case cfg.PublicKey != nil:
		switch k := cfg.PublicKey.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("the JWT RSA public key must be at least %d bits", minRSABits)
			}
			a.method, a.key = jwt.SigningMethodRS256, k
		case ed25519.PublicKey:
			a.method, a.key = jwt.SigningMethodEdDSA, k
		default:
			return nil, fmt.Errorf("unsupported JWT public key type %T: use RSA or Ed25519", cfg.PublicKey)
		}
	default:
		return nil, errors.New("a JWT secret or public key is required")
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultJWTLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{a.method.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// Errors of Verify beyond the jwt package's. Their text goes to logs; it
// never quotes a claim.
var (
	errTokenRoom   = errors.New("token is for another room")
	errTokenClaims = errors.New("token claims out of bounds")
)

// Verify checks a token for a join to room and returns its claims.
func (a *Authenticator) Verify(token, room string) (*Claims, error) {
	if len(token) > wire.MaxTokenBytes {
		return nil, errTokenClaims
	}
	var c Claims
	_, err := a.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already pinned the algorithm; check the
		// method's identity too so a key is never used with another
		// family's verifier.
		if t.Method != a.method {
			return nil, jwt.ErrTokenSignatureInvalid
		}
		return a.key, nil
	})
	if err != nil {
		return nil, err
	}
	if c.Room == "" || (c.Room != AnyRoom && c.Room != room) {
		return nil, errTokenRoom
	}
	if c.Name != "" && wire.ValidDisplayName(c.Name) != nil {
		return nil, errTokenClaims
	}
	if len(c.Regions) > maxRegionPins {
		return nil, errTokenClaims
	}
	for _, r := range c.Regions {
		if r == "" || len(r) > wire.MaxRegionBytes {
			return nil, errTokenClaims
		}
	}
	return &c, nil
}

// tokenReason names why a token was refused, for a log line: the jwt
// package's error class, never the token or a claim.
func tokenReason(err error) string {
	for _, e := range []error{
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidAudience, jwt.ErrTokenExpired,
		jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenNotValidYet,
		jwt.ErrTokenInvalidClaims, errTokenRoom, errTokenClaims,
	} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "invalid token"
}

// MintToken signs claims with an HS256 secret (meshmeet token, tests).
func MintToken(secret []byte, c Claims) (string, error) {
	if len(secret) < MinJWTSecret {
		return "", ErrShortSecret
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// ReadJWTSecret reads an HS256 secret from a file: its bytes with
// surrounding white space removed, at least MinJWTSecret of them. The
// error names the file, never the secret.
func ReadJWTSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("--jwt-secret-file is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("JWT secret file %s is empty", path)
	}
	if len(b) < MinJWTSecret {
		return nil, fmt.Errorf("JWT secret file %s: %w (got %d; make one with: head -c 48 /dev/urandom | base64)", path, ErrShortSecret, len(b))
	}
	return b, nil
}

// ReadJWTPublicKey reads a PEM public key (PKIX "PUBLIC KEY", or PKCS#1
// "RSA PUBLIC KEY") from a file.
func ReadJWTPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT public key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("JWT public key %s: no PEM block", path)
	}
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("JWT public key %s: %w", path, err)
		}
		return k, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("JWT public key %s: %w", path, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("JWT public key %s: PEM block %q is not a public key", path, blk.Type)
}

// grant is what a join is allowed, from its token or as a guest. It is set
// on the socket by authorize and copied into the participant by join.
type grant struct {
	moderator bool
	regionPin []string
}

// authorize decides, before the directory counts it, whether a new join (not
// a resume) may enter the room key: its token under --auth jwt, the
// room's password. It may replace m.Name with the token's. Every refusal
// is the one generic errRefused, after the same work (refuse.go): a
// never-used name, a wrong password and a missing token cannot be told
// apart by the answer.
func (s *Server) authorize(ctx context.Context, c *conn, key mesh.RoomKey, m *wire.Message) error {
	c.grant = grant{}
	tokened := false
	if a := s.cfg.Auth; a != nil {
		switch {
		case m.Token != "":
			cl, err := a.Verify(m.Token, m.Room)
			if err != nil {
				return s.refuse(ctx, "token: "+tokenReason(err))
			}
			tokened = true
			c.grant = grant{moderator: cl.Moderator, regionPin: cl.Regions}
			if cl.Name != "" {
				m.Name = cl.Name
			}
		case !s.cfg.AuthCreateOnly:
			return s.refuse(ctx, "token: missing")
		}
	}
	dctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	info, exists, err := s.lookupForJoin(dctx, c, key) // resume.go
	cancel()
	if err != nil {
		if errors.Is(err, mesh.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			return errUnavailable
		}
		s.log.Error("directory lookup", "err", err)
		return errInternal
	}
	if !exists && s.cfg.Auth != nil && !tokened {
		return s.refuse(ctx, "token: needed to create a room")
	}
	if !exists || len(info.PasswordHash) == 0 || (c.grant.moderator && s.cfg.StrongModeration) {
		if m.Password != "" {
			// A password costs its derivation whether or not the room
			// has one: the timing does not say.
			dummyHash(ctx)
		}
		return nil
	}
	if !s.guesses.allow(c.src, key) {
		if m.Password != "" {
			s.guesses.failSource(c.src)
		}
		return s.refuse(ctx, "password: guessing too fast")
	}
	ok, err := verifyPassword(ctx, info.PasswordHash, m.Password)
	if err != nil {
		return s.refuseChecked("password: " + err.Error())
	}
	if !ok {
		if m.Password != "" {
			s.guesses.fail(c.src, key)
		}
		return s.refuseChecked("password: wrong or missing")
	}
	return nil
}
