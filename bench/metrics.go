package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// nodeMetrics is what the bench reads from a node's Prometheus endpoint
// (`serve --metrics-addr`): its process cost and the bridge's counters.
// All are aggregate; none names a room or participant.
type nodeMetrics struct {
	ok        bool
	cpu       float64            // process_cpu_seconds_total
	rss       float64            // process_resident_memory_bytes
	forwarded float64            // meshmeet_bridge_forwarded_packets_total
	drops     map[string]float64 // meshmeet_bridge_dropped_packets_total by reason
	relayOut  float64            // meshmeet_relay_bytes_total{direction="out"}
	relaySeen bool               // the node exports relay byte counters
}

// scrapeMetrics reads url (…/metrics) once.
func scrapeMetrics(ctx context.Context, url string) (nodeMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nodeMetrics{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nodeMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nodeMetrics{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

// parseMetrics reads the Prometheus text format, keeping the few series
// the bench uses.
func parseMetrics(sc *bufio.Scanner) (nodeMetrics, error) {
	m := nodeMetrics{drops: map[string]float64{}}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		// name{labels} value [timestamp]; labels hold no spaces here.
		series, val := f[0], f[1]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(series, "{")
		switch name {
		case "process_cpu_seconds_total":
			m.cpu, m.ok = v, true
		case "process_resident_memory_bytes":
			m.rss = v
		case "meshmeet_bridge_forwarded_packets_total":
			m.forwarded = v
		case "meshmeet_relay_bytes_total":
			if strings.Contains(labels, `direction="out"`) {
				m.relayOut, m.relaySeen = m.relayOut+v, true
			}
		case "meshmeet_bridge_dropped_packets_total":
			if _, r, ok := strings.Cut(labels, `reason="`); ok {
				reason, _, _ := strings.Cut(r, `"`)
				m.drops[reason] += v
			}
		}
	}
	return m, sc.Err()
}
