package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// probeTries is how many times each region's probe is timed; the fastest
// counts (the first one also pays for the TCP and TLS handshakes).
const probeTries = 3

// MeasureRTTs asks the node at baseURL for the cluster's regions (GET
// /regions) and times each region's probe URL in parallel, as the web
// client does before a join. It returns at most wire.MaxRTTs round trips,
// in milliseconds, for the regions that answered before ctx ended.
func MeasureRTTs(ctx context.Context, baseURL string) ([]wire.RegionRTT, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/regions"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("client: GET /regions: " + resp.Status)
	}
	var list struct {
		Regions []struct {
			Region string `json:"region"`
			Probe  string `json:"probe"`
		} `json:"regions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&list); err != nil {
		return nil, err
	}
	var (
		mu  sync.Mutex
		out []wire.RegionRTT
		wg  sync.WaitGroup
	)
	for _, r := range list.Regions {
		if len(out)+1 > wire.MaxRTTs || !validRegion(r.Region) || ValidRedirect(strings.TrimSuffix(r.Probe, "/probe")) != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			best := time.Duration(-1)
			for range probeTries {
				d, err := probeOnce(ctx, r.Probe)
				if err != nil {
					break
				}
				if best < 0 || d < best {
					best = d
				}
			}
			if best < 0 {
				return
			}
			mu.Lock()
			if len(out) < wire.MaxRTTs {
				out = append(out, wire.RegionRTT{Region: r.Region, MS: min(int(best.Milliseconds()), wire.MaxRTTMillis)})
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, nil
}

func probeOnce(ctx context.Context, probe string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, probe, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Cache-Control", "no-store")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, errors.New("client: probe: " + resp.Status)
	}
	return time.Since(start), nil
}

// validRegion: what wire.Message.Validate accepts as an rtts region.
func validRegion(s string) bool {
	if s == "" || len(s) > wire.MaxRegionBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
