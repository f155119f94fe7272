package main

import "github.com/urfave/cli/v2"

// clusterCommand is `meshmeet cluster init|status` (issue: cluster control
// plane).
func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "create a cluster secret or show a cluster's state",
	}
}
