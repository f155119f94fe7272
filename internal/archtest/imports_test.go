// Package archtest checks the import rules of DESIGN.md section 1 and
// STYLE.md B.1: the media path (bridge) never sees the control plane, the
// leaves import no sibling, and bench is a black-box client.
package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/meshmeet/meshmeet/"

// allowed lists, per package (prefix, without the module path), the
// project packages it may import. Packages not listed may import nothing of
// the project but internal/.
var allowed = map[string][]string{
	"cmd/meshmeet":        {"signaling", "bench", "mesh", "bridge", "relay", "turn", "web"},
	"signaling":           {"bridge", "mesh", "relay", "web", "signaling/wire", "signaling/roomname", "signaling/placement"},
	"signaling/wire":      {},
	"signaling/roomname":  {},
	"signaling/placement": {},
	"relay":               {"bridge"},
	"bridge":              {},
	"mesh":                {},
	"turn":                {},
	"web":                 {},
	"bench":               {"signaling/wire", "bench/client"},
	"bench/client":        {"signaling/wire"},
}

// forbiddenModules keeps libraries out of the packages that must not see
// them: the SFU links no control-plane library, the directory no pion.
var forbiddenModules = map[string][]string{
	"bridge": {"github.com/hashicorp/", "github.com/quic-go/", "github.com/coder/websocket"},
	"mesh":   {"github.com/pion/", "github.com/coder/websocket"},
	"turn":   {"github.com/hashicorp/", "github.com/coder/websocket"},
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(fields[0], module)
		rule, ok := ruleFor(pkg)
		if !ok {
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module) {
				dep := strings.TrimPrefix(imp, module)
				if strings.HasPrefix(dep, "internal/") || strings.HasPrefix(dep, pkg+"/internal") || permitted(rule, dep) {
					continue
				}
				t.Errorf("%s imports %s: not allowed by DESIGN.md section 1", pkg, dep)
			}
			for _, bad := range forbiddenModules[rootOf(pkg)] {
				if strings.HasPrefix(imp, bad) {
					t.Errorf("%s imports %s: the %s package must not link it", pkg, imp, rootOf(pkg))
				}
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked only %d packages; the rule table is stale", checked)
	}
}

// ruleFor finds the rule of pkg or of its nearest listed parent.
func ruleFor(pkg string) ([]string, bool) {
	for p := pkg; p != "" && p != "."; {
		if r, ok := allowed[p]; ok {
			return r, true
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil, false
}

func permitted(rule []string, dep string) bool {
	for _, r := range rule {
		if dep == r || strings.HasPrefix(dep, r+"/") {
			return true
		}
	}
	return false
}

func rootOf(pkg string) string {
	root, _, _ := strings.Cut(pkg, "/")
	return root
}
