package main

import (
	"context"
	"log/slog"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/mesh"
)

// meshConfig holds the cluster flags of serve.
type meshConfig struct{}

// meshFlags returns the cluster flags of serve.
func meshFlags(cfg *Config) []cli.Flag { return nil }

// startMesh starts the control plane in g. For now: a node alone with an
// in-memory directory and random keys.
func startMesh(ctx context.Context, g *errgroup.Group, cfg *Config, log *slog.Logger) (*controlPlane, error) {
	return &controlPlane{Directory: mesh.NewLocalDirectory(), Keys: devKeys()}, nil
}
