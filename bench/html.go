package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
)

// WriteHTMLFile writes the self-contained HTML report.
func (rep *Report) WriteHTMLFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteHTML writes one page with no external assets: the figures as in the
// table, and inline SVG plots of the delay distribution, the received
// bitrate and the CPU over time.
func (rep *Report) WriteHTML(w io.Writer) error {
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshmeet bench: ` + html.EscapeString(rep.Scenario.Name) + `</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
svg{background:#fff;border:1px solid #ddd;margin:0.5em 0}
.warn{color:#a40}.fail{color:#c00;font-weight:bold}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>meshmeet bench: %s</h1>\n", html.EscapeString(rep.Scenario.Name))
	fmt.Fprintf(&b, "<p>Started %s UTC, target %s, steady window %.1f s. Media figures count only packets sent in the steady window.</p>\n",
		rep.Started.Format("2006-01-02 15:04:05"), html.EscapeString(rep.Target), rep.WindowSeconds)
	for _, f := range rep.Guards.Failed {
		fmt.Fprintf(&b, "<p class=fail>Guard failed: %s</p>\n", html.EscapeString(f))
	}
	for _, x := range rep.Warnings {
		fmt.Fprintf(&b, "<p class=warn>Warning: %s</p>\n", html.EscapeString(x))
	}
	fmt.Fprintf(&b, "<pre>%s</pre>\n", html.EscapeString(table.String()))

	b.WriteString("<h2>One-way delay, cumulative</h2>\n")
	var cdfs []series
	for _, kind := range []string{"audio", "video"} {
		hb := rep.DelayHistogram[kind]
		if len(hb) == 0 {
			continue
		}
		var total float64
		for _, p := range hb {
			total += p[1]
		}
		s := series{name: kind}
		var cum float64
		for _, p := range hb {
			cum += p[1]
			s.x = append(s.x, math.Max(p[0], 0.01))
			s.y = append(s.y, 100*cum/total)
		}
		cdfs = append(cdfs, s)
	}
	b.WriteString(plot(cdfs, "delay (ms, log)", "% of packets", true, nil))

	var t []float64
	var rx series
	gen := series{name: "generator"}
	cores := float64(max(rep.Generator.CoresUsable, 1))
	machine := series{name: "whole machine"}
	var nodes []series
	var steady [2]float64
	for i, x := range rep.Timeline {
		t = append(t, x.T)
		rx.y = append(rx.y, x.RxKbps/1000)
		gen.y = append(gen.y, x.GenCores)
		machine.y = append(machine.y, x.MachineBusy*cores)
		for j, c := range x.NodeCores {
			for len(nodes) <= j {
				name := fmt.Sprintf("node %d", len(nodes)+1)
				if len(nodes) < len(rep.Nodes) {
					name = rep.Nodes[len(nodes)].Name
				}
				nodes = append(nodes, series{name: name, y: make([]float64, i)})
			}
			nodes[j].y = append(nodes[j].y, c)
		}
		if x.Phase == "steady" {
			if steady[0] == 0 {
				steady[0] = x.T - 1
			}
			steady[1] = x.T
		}
	}
	rx.name = "received"
	rx.x = t
	gen.x = t
	machine.x = t
	for i := range nodes {
		nodes[i].x = t[:len(nodes[i].y)]
	}
	var band []float64
	if steady[1] > 0 {
		band = steady[:]
	}
	b.WriteString("<h2>Received bitrate (Mbit/s), all participants</h2>\n")
	b.WriteString(plot([]series{rx}, "time (s)", "Mbit/s", false, band))
	b.WriteString("<h2>CPU (cores)</h2>\n")
	b.WriteString(plot(append(nodes, gen, machine), "time (s)", "cores", false, band))
	b.WriteString("<p>The shaded band is the steady window.</p>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type series struct {
	name string
	x, y []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

// plot draws line series as an inline SVG. band shades [band[0], band[1]]
// on the x axis.
func plot(ss []series, xlabel, ylabel string, logX bool, band []float64) string {
	const W, H, L, R, T, B = 900, 300, 60, 20, 20, 45
	var xmin, xmax, ymax float64 = math.Inf(1), math.Inf(-1), 0
	n := 0
	for _, s := range ss {
		for i := range s.x {
			xmin, xmax = math.Min(xmin, s.x[i]), math.Max(xmax, s.x[i])
			ymax = math.Max(ymax, s.y[i])
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, W, H, W, H)
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`+"\n", W/2-30, H/2)
		return b.String()
	}
	if ymax == 0 {
		ymax = 1
	}
	ymax *= 1.05
	fx := func(v float64) float64 { return v }
	if logX {
		fx = func(v float64) float64 { return math.Log10(math.Max(v, 1e-3)) }
		xmin = math.Floor(fx(xmin))
		xmax = math.Ceil(fx(xmax))
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	px := func(v float64) float64 { return L + (fx(v)-xmin)/(xmax-xmin)*(W-L-R) }
	py := func(v float64) float64 { return H - B - v/ymax*(H-T-B) }
	if len(band) == 2 {
		x0, x1 := px(band[0]), px(band[1])
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#eef4ff"/>`, x0, T, math.Max(x1-x0, 0), H-T-B)
	}
	// Axes and ticks.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, L, H-B, W-R, H-B)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, L, T, L, H-B)
	for i := 0; i <= 4; i++ {
		v := ymax / 1.05 * float64(i) / 4
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`,
			L, y, W-R, y, L-4, y+4, num(v))
	}
	if logX {
		for e := xmin; e <= xmax; e++ {
			v := math.Pow(10, e)
			x := px(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`,
				x, T, x, H-B, x, H-B+15, num(v))
		}
	} else {
		for i := 0; i <= 5; i++ {
			v := xmin + (xmax-xmin)*float64(i)/5
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, px(v), H-B+15, num(v))
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, (W+L)/2, H-8, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text x="14" y="%d" font-size="12" text-anchor="middle" transform="rotate(-90 14 %d)">%s</text>`, (H-B+T)/2, (H-B+T)/2, html.EscapeString(ylabel))
	for i, s := range ss {
		col := palette[i%len(palette)]
		var pts []string
		for j := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[j]), py(s.y[j])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`, col, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`,
			W-R-150, T+5+i*16, col, W-R-135, T+14+i*16, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// num formats an axis label.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
