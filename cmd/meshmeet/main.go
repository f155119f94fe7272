// Command meshmeet runs a meshmeet node and its tools. DESIGN.md section 10
// is the contract of its commands and flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// SIGTERM drains a running serve (drain.go); other commands stop.
	ctx, stopTerm := withTermSignal(ctx)
	defer stopTerm()
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "meshmeet:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "meshmeet",
		Usage:   "self-hostable video meetings across regions",
		Version: version,
		Commands: []*cli.Command{
			serveCommand(),
			roomCommand(),
			clusterCommand(),
			benchCommand(),
			tokenCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, "meshmeet", version)
					return nil
				},
			},
		},
	}
}

// envVar names the environment variable of a flag: MESHMEET_<FLAG>.
func envVar(flag string) []string {
	b := []byte("MESHMEET_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}
