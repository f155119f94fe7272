package mesh

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// nodeCertLifetime is how long a self-issued node certificate is valid. It
// is renewed when half of it has passed, so a stolen one expires soon.
const nodeCertLifetime = 24 * time.Hour

// PKI holds what mutual TLS between nodes needs: the CA that every peer's
// certificate must chain to, and this node's certificate.
type PKI struct {
	pool *x509.CertPool // static after construction

	// caKey and caCert issue node certificates; nil for an operator's PKI.
	caKey  ed25519.PrivateKey
	caCert *x509.Certificate
	name   string

	mu   sync.Mutex
	cert *tls.Certificate // guarded by mu
	now  func() time.Time
}

// NewClusterPKI returns the PKI derived from the cluster secret: a CA from
// keys.CAKey (the same certificate on every node, since Ed25519 signatures
// are deterministic) and a node certificate issued on demand.
func NewClusterPKI(keys Keys, nodeName string) (*PKI, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "meshmeet cluster CA"},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, keys.CAKey.Public(), keys.CAKey)
	if err != nil {
		return nil, fmt.Errorf("cluster ca: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cluster ca: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &PKI{pool: pool, caKey: keys.CAKey, caCert: ca, name: nodeName, now: time.Now}, nil
}

// LoadPKI returns an operator's PKI from PEM: the CA certificate(s) peers
// must chain to, and this node's certificate and key (usable for both TLS
// client and server).
func LoadPKI(caPEM, certPEM, keyPEM []byte) (*PKI, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("--cluster-ca: no PEM certificate found")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, errors.New("--node-cert/--node-key: not a matching PEM certificate and key")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--node-cert: %w", err)
	}
	cert.Leaf = leaf
	if err := verifyChain(pool, cert.Certificate); err != nil {
		return nil, fmt.Errorf("--node-cert does not chain to --cluster-ca: %w", err)
	}
	return &PKI{pool: pool, cert: &cert, now: time.Now}, nil
}

// certificate returns this node's certificate, issuing a fresh one when the
// current one is past half of its life.
func (p *PKI) certificate() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.caKey == nil {
		return p.cert, nil
	}
	now := p.now()
	if p.cert != nil && now.Before(p.cert.Leaf.NotBefore.Add(nodeCertLifetime/2+time.Minute)) {
		return p.cert, nil
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: p.name},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(nodeCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"meshmeet-node"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, pub, p.caKey)
	if err != nil {
		return nil, fmt.Errorf("issue node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key), Leaf: leaf}
	return p.cert, nil
}

// verifyChain checks that the peer's certificate chains to the pool. Host
// names are not checked: cluster membership is proven by the CA alone.
func verifyChain(pool *x509.CertPool, raw [][]byte) error {
	if len(raw) == 0 || len(raw) > 4 {
		return errors.New("peer sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return errors.New("peer certificate does not parse")
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return errors.New("peer certificate is not issued by the cluster CA")
	}
	return nil
}

// tlsConfig returns the TLS 1.3 configuration for both ends of a link: each
// side presents its node certificate and requires one from the other.
func (p *PKI) tlsConfig(server bool) *tls.Config {
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error { return verifyChain(p.pool, raw) }
	c := &tls.Config{
		MinVersion:            tls.VersionTLS13,
		VerifyPeerCertificate: verify,
		// Chains are checked by verify above, without host names.
		InsecureSkipVerify: true,
	}
	if server {
		c.ClientAuth = tls.RequireAnyClientCert
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.certificate() }
	} else {
		c.ServerName = "meshmeet-node"
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return p.certificate() }
	}
	return c
}

// RelayTLS returns the TLS 1.3 configurations of relay links, server side
// and client side: the same mutual TLS as raft's, each side presenting its
// node certificate and requiring one of the cluster CA from the other.
func (p *PKI) RelayTLS() (server, client *tls.Config) {
	return p.tlsConfig(true), p.tlsConfig(false)
}

// encodePEM is for tests and tools that write certificates.
func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
