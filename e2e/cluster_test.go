package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// nodeSpec is one node of a cluster started by startCluster.
type nodeSpec struct {
	name, region string
	extra        []string      // flags after the cluster's own
	started      func(*server) // if set, runs once the node serves, before the next starts
}

// writeClusterSecret writes a fresh cluster secret (as `meshmeet cluster
// init` prints it) to a file in a temporary directory and returns its path.
func writeClusterSecret(t *testing.T) string {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	secretFile := filepath.Join(t.TempDir(), "cluster-secret")
	if err := os.WriteFile(secretFile, []byte("meshmeet-cs1:"+base64.RawURLEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secretFile
}

// startCluster runs one `meshmeet serve` per spec as one cluster: a fresh
// cluster secret, every node a raft voter (--bootstrap-expect len(specs)),
// gossip joining all the others, raft and the relay on loopback. It
// returns the nodes, in spec order, once each answers /readyz, and the
// cluster secret file.
func startCluster(t *testing.T, bin string, specs []nodeSpec) ([]*server, string) {
	t.Helper()
	secretFile := writeClusterSecret(t)
	gossip := make([]string, len(specs))
	for i := range gossip {
		gossip[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, true)))
	}
	nodes := make([]*server, len(specs))
	for i, s := range specs {
		var join []string
		for j, g := range gossip {
			if j != i {
				join = append(join, g)
			}
		}
		args := []string{
			"--node-name", s.name,
			"--region", s.region,
			"--cluster-secret-file", secretFile,
			"--gossip-addr", gossip[i],
			"--raft-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, false))),
			"--relay-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, true))),
			"--join", strings.Join(join, ","),
			"--bootstrap-expect", strconv.Itoa(len(specs)),
			"--raft-voter",
		}
		nodes[i] = startServer(t, bin, append(args, s.extra...)...)
		if s.started != nil {
			s.started(nodes[i])
		}
	}
	for _, n := range nodes {
		waitReady(t, n)
	}
	return nodes, secretFile
}

// regionNodes is one node per region, named node-<region>.
func regionNodes(regions ...string) []nodeSpec {
	specs := make([]nodeSpec, len(regions))
	for i, r := range regions {
		specs[i] = nodeSpec{name: "node-" + r, region: r}
	}
	return specs
}
