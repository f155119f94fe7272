package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// roomCommand is `meshmeet room new|check`.
func roomCommand() *cli.Command {
	return &cli.Command{
		Name:  "room",
		Usage: "make or check room names",
		Subcommands: []*cli.Command{
			{
				Name:  "new",
				Usage: "print a random room name that is hard to guess and easy to say",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, roomname.New())
					return nil
				},
			},
			{
				Name:      "check",
				Usage:     "warn if NAME is easy to guess (exit status 1 when it is)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("usage: meshmeet room check NAME", 2)
					}
					if r := roomname.Check(c.Args().First()); r != roomname.OK {
						return cli.Exit(r.Message(), 1)
					}
					fmt.Fprintln(c.App.Writer, "This name is not easy to guess.")
					return nil
				},
			},
		},
	}
}
