package main

import (
	"context"
	"log/slog"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// turnConfig holds the TURN flags of serve.
type turnConfig struct{}

// turnFlags returns the TURN flags of serve.
func turnFlags(cfg *Config) []cli.Flag { return nil }

// startTURN starts the embedded TURN server in g and returns the ICE servers
// to hand each participant. For now: none.
func startTURN(ctx context.Context, g *errgroup.Group, cfg *Config, keys clusterKeys, log *slog.Logger) (iceServerFunc, error) {
	return func() []wire.ICEServer { return nil }, nil
}
