package e2e

// The test runs a meshmeet binary that it builds itself, so go test cannot
// see that the binary's code changed and would replay a cached result.
// Linking the server's packages into the test binary makes its cache key
// follow their code (and, through package web, the embedded client).
import (
	_ "github.com/meshmeet/meshmeet/bridge"
	_ "github.com/meshmeet/meshmeet/mesh"
	_ "github.com/meshmeet/meshmeet/signaling"
	_ "github.com/meshmeet/meshmeet/turn"
	_ "github.com/meshmeet/meshmeet/web"
)
