package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Access control: serve's --auth flags and --trusted-proxy, and the token
// command that mints the tokens --auth jwt checks (docs/security.md).

// authConfig is serve's access control, one field per flag.
type authConfig struct {
	Mode           string // none or jwt
	SecretFile     string
	PublicKeyFile  string
	Audience       string
	Issuer         string
	CreateOnly     bool
	TrustedProxies cli.StringSlice
}

func authFlags(cfg *Config) []cli.Flag {
	a := &cfg.Auth
	return []cli.Flag{
		&cli.StringFlag{Name: "auth", Value: "none", EnvVars: envVar("auth"), Destination: &a.Mode,
			Usage: "none: anyone may join and moderate (soft moderation); jwt: joins need a token, only moderator tokens moderate"},
		&cli.StringFlag{Name: "jwt-secret-file", EnvVars: envVar("jwt-secret-file"), Destination: &a.SecretFile,
			Usage: "with --auth jwt: file holding the HS256 secret (at least 32 bytes)"},
		&cli.StringFlag{Name: "jwt-public-key", EnvVars: envVar("jwt-public-key"), Destination: &a.PublicKeyFile,
			Usage: "with --auth jwt: PEM public key of RS256 (RSA ≥2048 bits) or EdDSA (Ed25519) tokens, instead of a secret"},
		&cli.StringFlag{Name: "jwt-audience", EnvVars: envVar("jwt-audience"), Destination: &a.Audience,
			Usage: "with --auth jwt: required aud claim (default: not checked)"},
		&cli.StringFlag{Name: "jwt-issuer", EnvVars: envVar("jwt-issuer"), Destination: &a.Issuer,
			Usage: "with --auth jwt: required iss claim (default: not checked)"},
		&cli.BoolFlag{Name: "auth-create-only", EnvVars: envVar("auth-create-only"), Destination: &a.CreateOnly,
			Usage: "with --auth jwt: a token is needed only to create a room; guests without one may join a live room"},
		&cli.StringSliceFlag{Name: "trusted-proxy", EnvVars: envVar("trusted-proxy"), Destination: &a.TrustedProxies,
			Usage: "repeatable CIDR (or address) of a reverse proxy whose X-Forwarded-For is trusted for per-source limits"},
	}
}

// authSettings is what serve hands signaling.
type authSettings struct {
	auth           *signaling.Authenticator
	createOnly     bool
	strong         bool
	trustedProxies []netip.Prefix
}

// build checks the flags and loads the key. Every mistake stops startup
// with a message naming the flag (never a secret).
func (a *authConfig) build() (authSettings, error) {
	var s authSettings
	for _, v := range a.TrustedProxies.Value() {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			p, err := parsePrefix(f)
			if err != nil {
				return s, fmt.Errorf("--trusted-proxy %q: not a CIDR range or address", f)
			}
			s.trustedProxies = append(s.trustedProxies, p)
		}
	}
	switch a.Mode {
	case "none", "":
		if a.SecretFile != "" || a.PublicKeyFile != "" || a.CreateOnly || a.Audience != "" || a.Issuer != "" {
			return s, errors.New("--jwt-secret-file, --jwt-public-key, --jwt-audience, --jwt-issuer and --auth-create-only need --auth jwt")
		}
		return s, nil
	case "jwt":
	default:
		return s, fmt.Errorf("--auth must be none or jwt, not %q", a.Mode)
	}
	cfg := signaling.AuthConfig{Audience: a.Audience, Issuer: a.Issuer}
	switch {
	case a.SecretFile != "" && a.PublicKeyFile != "":
		return s, errors.New("--auth jwt: give --jwt-secret-file or --jwt-public-key, not both")
	case a.SecretFile != "":
		secret, err := signaling.ReadJWTSecret(a.SecretFile)
		if err != nil {
			return s, fmt.Errorf("--jwt-secret-file: %w", err)
		}
		cfg.HMACSecret = secret
	case a.PublicKeyFile != "":
		k, err := signaling.ReadJWTPublicKey(a.PublicKeyFile)
		if err != nil {
			return s, fmt.Errorf("--jwt-public-key: %w", err)
		}
		cfg.PublicKey = k
	default:
		return s, errors.New("--auth jwt needs --jwt-secret-file or --jwt-public-key")
	}
	auth, err := signaling.NewAuthenticator(cfg)
	if err != nil {
		return s, fmt.Errorf("--auth jwt: %w", err)
	}
	s.auth, s.createOnly, s.strong = auth, a.CreateOnly, true
	return s, nil
}

// parsePrefix parses a CIDR range, or an address as a one-address range.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// maxTokenTTL bounds --ttl: a token is a bearer credential.
const maxTokenTTL = 366 * 24 * time.Hour

func tokenCommand() *cli.Command {
	var (
		secretFile, room, name, audience, issuer string
		moderator                                bool
		ttl                                      time.Duration
		regions                                  cli.StringSlice
	)
	return &cli.Command{
		Name:      "token",
		Usage:     "mint a JWT (HS256) for a participant or moderator of --auth jwt",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "jwt-secret-file", Required: true, EnvVars: envVar("jwt-secret-file"), Destination: &secretFile,
				Usage: "file holding the HS256 secret the nodes check (at least 32 bytes)"},
			&cli.StringFlag{Name: "room", Required: true, Destination: &room,
				Usage: `room name the token admits to, or "*" for every room`},
			&cli.BoolFlag{Name: "moderator", Destination: &moderator,
				Usage: "the holder moderates (mute others, remove, lock, password, lobby, end for all)"},
			&cli.StringFlag{Name: "name", Destination: &name,
				Usage: "display name the holder joins with (replaces the one typed)"},
			&cli.DurationFlag{Name: "ttl", Value: 2 * time.Hour, Destination: &ttl,
				Usage: "how long the token is valid"},
			&cli.StringFlag{Name: "jwt-audience", EnvVars: envVar("jwt-audience"), Destination: &audience,
				Usage: "aud claim (match the nodes' --jwt-audience)"},
			&cli.StringFlag{Name: "jwt-issuer", EnvVars: envVar("jwt-issuer"), Destination: &issuer,
				Usage: "iss claim (match the nodes' --jwt-issuer)"},
			&cli.StringSliceFlag{Name: "region", Destination: &regions,
				Usage: "repeatable: pin the holder's media to these regions"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return errors.New("token takes no arguments")
			}
			secret, err := signaling.ReadJWTSecret(secretFile)
			if err != nil {
				return fmt.Errorf("--jwt-secret-file: %w", err)
			}
			if room != signaling.AnyRoom {
				if err := wire.ValidRoomName(room); err != nil {
					return fmt.Errorf("--room: %w", err)
				}
			}
			if name != "" {
				if err := wire.ValidDisplayName(name); err != nil {
					return fmt.Errorf("--name: %w", err)
				}
			}
			if ttl <= 0 || ttl > maxTokenTTL {
				return fmt.Errorf("--ttl must be between 1s and %v", maxTokenTTL)
			}
			now := time.Now()
			cl := signaling.Claims{
				Room:      room,
				Moderator: moderator,
				Name:      name,
				Regions:   regions.Value(),
				RegisteredClaims: jwt.RegisteredClaims{
					IssuedAt:  jwt.NewNumericDate(now),
					NotBefore: jwt.NewNumericDate(now),
					ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
					Issuer:    issuer,
				},
			}
			if audience != "" {
				cl.Audience = jwt.ClaimStrings{audience}
			}
			tok, err := signaling.MintToken(secret, cl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, tok)
			return err
		},
	}
}
