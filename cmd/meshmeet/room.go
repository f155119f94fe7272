package main

import "github.com/urfave/cli/v2"

// roomCommand is `meshmeet room new|check`.
func roomCommand() *cli.Command {
	return &cli.Command{Name: "room", Usage: "make or check room names"}
}
