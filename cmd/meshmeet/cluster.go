package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/placement"
)

// clusterCommand is `meshmeet cluster init|status`.
func clusterCommand() *cli.Command {
	var (
		statusURL  string
		secretFile string
		asJSON     bool
	)
	return &cli.Command{
		Name:  "cluster",
		Usage: "create a cluster secret or show a cluster's state",
		Subcommands: []*cli.Command{
			clusterDrainCommand(),
			{
				Name:  "init",
				Usage: "print a new random cluster secret: (umask 077; meshmeet cluster init > cluster.secret)",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintln(c.App.Writer, mesh.NewSecret().Encode())
					return err
				},
			},
			{
				Name:  "admin-token",
				Usage: "print the admin token derived from the cluster secret (for the cluster page, /cluster, or Authorization: Bearer)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "cluster-secret-file", EnvVars: envVar("cluster-secret-file"), Destination: &secretFile,
						Usage: "file holding the cluster secret (or the secret itself in " + envClusterSecret + ")"},
				},
				Action: func(c *cli.Context) error {
					token, err := adminToken("admin-token", secretFile)
					if err != nil {
						return err
					}
					auth := mesh.AdminAuthorization(token)
					_, err = fmt.Fprintln(c.App.Writer, strings.TrimPrefix(auth, "Bearer "))
					return err
				},
			},
			{
				Name:  "status",
				Usage: "show members, regions, load, raft leader and voters, and the number of live rooms",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:7880", EnvVars: envVar("url"), Destination: &statusURL,
						Usage: "HTTP address of any node"},
					&cli.StringFlag{Name: "cluster-secret-file", EnvVars: envVar("cluster-secret-file"), Destination: &secretFile,
						Usage: "file holding the cluster secret (or the secret itself in " + envClusterSecret + ")"},
					&cli.BoolFlag{Name: "json", Destination: &asJSON, Usage: "print the raw JSON answer"},
				},
				Action: func(c *cli.Context) error {
					token, err := adminToken("status", secretFile)
					if err != nil {
						return err
					}
					st, raw, err := fetchStatus(c.Context, statusURL, token)
					if err != nil {
						return err
					}
					if asJSON {
						_, err = c.App.Writer.Write(raw)
						return err
					}
					return printStatus(c.App.Writer, st)
				},
			},
		},
	}
}

// adminToken is the admin token of the cluster whose secret is in file (or
// the environment), for the cluster subcommand cmd.
func adminToken(cmd, file string) ([]byte, error) {
	secret, ok, err := readClusterSecret(file)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("cluster " + cmd + " needs the cluster secret: --cluster-secret-file or " + envClusterSecret)
	}
	return mesh.DeriveKeys(secret).AdminToken, nil
}

// fetchStatus asks a node for the cluster status with the admin token.
func fetchStatus(ctx context.Context, base string, token []byte) (mesh.Status, []byte, error) {
	var st mesh.Status
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return st, nil, errors.New("--url must be http(s)://host:port")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/admin/status"
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return st, nil, err
	}
	req.Header.Set("Authorization", mesh.AdminAuthorization(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, nil, fmt.Errorf("cluster status: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return st, nil, fmt.Errorf("cluster status: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return st, nil, errors.New("cluster status: refused: the node has another cluster secret")
	default:
		return st, nil, fmt.Errorf("cluster status: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("cluster status: bad answer: %w", err)
	}
	return st, raw, nil
}

func printStatus(w io.Writer, st mesh.Status) error {
	voters := map[string]bool{}
	for _, v := range st.Voters {
		voters[v] = true
	}
	// Nodes by region (then name), each region's totals after its nodes.
	members := append([]mesh.MemberStatus(nil), st.Members...)
	sort.SliceStable(members, func(i, j int) bool {
		if members[i].Region != members[j].Region {
			return members[i].Region < members[j].Region
		}
		return members[i].Name < members[j].Name
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREGION\tSTATE\tRAFT\tPARTICIPANTS\tCAPACITY\tSTRESS\tCPU\tBITRATE\tDRAINING")
	var sum regionSum
	for i, m := range members {
		role := "-"
		switch {
		case m.Name == st.Leader:
			role = "leader"
		case voters[m.Name]:
			role = "voter"
		case m.Voter:
			role = "voter?" // started as voter, not in the configuration
		}
		region := m.Region
		if m.Lat != nil && m.Lon != nil {
			region += fmt.Sprintf(" (%.2f,%.2f)", *m.Lat, *m.Lon)
		}
		capacity := "-"
		if m.Capacity > 0 {
			capacity = fmt.Sprint(m.Capacity)
		}
		stress := memberStress(m)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%.2f\t%s\t%v\n", m.Name, region, m.State, role,
			m.Participants, capacity, formatStress(stress, m.Capacity), m.CPU, formatBitrate(m.BitrateBps), m.Draining)
		sum.add(m, stress)
		if i == len(members)-1 || members[i+1].Region != m.Region {
			sum.print(tw, m.Region)
			sum = regionSum{}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	leader := st.Leader
	if leader == "" {
		leader = "none (no quorum)"
	}
	fmt.Fprintf(w, "\nraft leader: %s\nraft voters: %s (%d)\n", leader, strings.Join(st.Voters, ", "), len(st.Voters))
	if st.Rooms < 0 {
		fmt.Fprintln(w, "live rooms: unknown (directory unavailable)")
	} else {
		fmt.Fprintf(w, "live rooms: %d\n", st.Rooms)
	}
	fmt.Fprintf(w, "answered by: %s\n", st.Node)
	return printRelayLinks(w, st)
}

// printRelayLinks prints the answering node's relay links: the QUIC
// connection to each node it shares a meeting with, as measured over the
// relay's last statistics interval.
func printRelayLinks(w io.Writer, st mesh.Status) error {
	if len(st.RelayLinks) == 0 {
		_, err := fmt.Fprintf(w, "\nrelay links of %s: none\n", st.Node)
		return err
	}
	fmt.Fprintf(w, "\nrelay links of %s:\n", st.Node)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tDIALLED\tRTT\tLOSS\tSEND\tRECEIVE\tLAYER CAP\tMEETINGS")
	for _, l := range st.RelayLinks {
		fmt.Fprintf(tw, "%s\t%v\t%.1f ms\t%.1f %%\t%s\t%s\t%d\t%d\n", l.Peer, l.Dialled, float64(l.RTTMicros)/1000,
			l.Loss*100, formatBitrate(int64(min(l.SendBps, 1<<62))), formatBitrate(int64(min(l.RecvBps, 1<<62))), l.LayerCap, l.Rooms)
	}
	return tw.Flush()
}

func formatBitrate(bps int64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f Gb/s", float64(bps)/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mb/s", float64(bps)/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.0f kb/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%d b/s", bps)
}

// memberStress is a member's stress as placement measures it
// (placement.Stress) from what the status carries: participants against
// capacity.
func memberStress(m mesh.MemberStatus) float64 {
	return placement.Stress(placement.Bridge{Participants: m.Participants, Capacity: m.Capacity})
}

func formatStress(s float64, capacity int) string {
	if capacity <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", s)
}

// regionSum totals one region's nodes for printStatus.
type regionSum struct {
	nodes, alive, draining, participants, capacity int
	bitrate                                        int64
	maxStress                                      float64
}

func (r *regionSum) add(m mesh.MemberStatus, stress float64) {
	r.nodes++
	if m.State != string(mesh.MemberAlive) {
		return
	}
	r.alive++
	if m.Draining {
		r.draining++
	}
	r.participants += m.Participants
	r.capacity += m.Capacity
	r.bitrate += m.BitrateBps
	r.maxStress = max(r.maxStress, stress)
}

// print writes the region's line: its live nodes and their load.
func (r *regionSum) print(w io.Writer, region string) {
	capacity := "-"
	if r.capacity > 0 {
		capacity = fmt.Sprint(r.capacity)
	}
	// "live", not "alive": a member's STATE cell is the only " alive ".
	fmt.Fprintf(w, "\t%s total\t%d/%d live\t\t%d\t%s\tmax %.2f\t\t%s\t%d draining\n",
		region, r.alive, r.nodes, r.participants, capacity, r.maxStress, formatBitrate(r.bitrate), r.draining)
}
