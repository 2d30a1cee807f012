// Package wrk drives the wrk HTTP load generator (Debian package wrk) and
// reads its results: throughput, errors and latency percentiles, taken from
// a Lua done() hook that prints them as JSON.
package wrk

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed report.lua
var reportLua []byte

const marker = "WRKJSON "

// Options describe one run.
type Options struct {
	URL         string
	Threads     int           // wrk -t
	Connections int           // wrk -c
	Duration    time.Duration // wrk -d, whole seconds, at least 1 s
	Timeout     time.Duration // wrk --timeout per request; 0 = 5 s
}

// Errors counts the failed requests by kind. Status counts answers outside
// 2xx and 3xx.
type Errors struct {
	Connect int64 `json:"connect"`
	Read    int64 `json:"read"`
	Write   int64 `json:"write"`
	Status  int64 `json:"status"`
	Timeout int64 `json:"timeout"`
}

// Latency is in microseconds.
type Latency struct {
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	Stdev float64 `json:"stdev"`
	Max   float64 `json:"max"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
}

// Result is one run's outcome.
type Result struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Bytes      int64   `json:"bytes"`
	Errors     Errors  `json:"errors"`
	LatencyUS  Latency `json:"latency_us"`
}

// RPS is the request rate.
func (r Result) RPS() float64 {
	if r.DurationUS <= 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// Path returns the wrk executable, or an error saying how to install it.
func Path() (string, error) {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", errors.New("wrk is not installed: run scripts/install-deps.sh (Debian package wrk)")
	}
	return p, nil
}

// Run runs wrk once. dir is a private folder for the Lua script.
func Run(ctx context.Context, dir string, o Options) (Result, error) {
	bin, err := Path()
	if err != nil {
		return Result{}, err
	}
	if o.Threads < 1 || o.Connections < o.Threads {
		return Result{}, fmt.Errorf("wrk: need threads >= 1 and connections >= threads, got %d and %d", o.Threads, o.Connections)
	}
	secs := int(o.Duration.Round(time.Second) / time.Second)
	if secs < 1 {
		return Result{}, fmt.Errorf("wrk: duration %s is shorter than wrk's 1 s resolution", o.Duration)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	script := filepath.Join(dir, "wrk-report.lua")
	if err := os.WriteFile(script, reportLua, 0o600); err != nil {
		return Result{}, fmt.Errorf("write wrk script: %w", err)
	}
	args := []string{
		"-t", strconv.Itoa(o.Threads), "-c", strconv.Itoa(o.Connections),
		"-d", strconv.Itoa(secs) + "s", "--timeout", strconv.Itoa(max(1, int(timeout/time.Second))) + "s",
		"--latency", "-s", script, o.URL,
	}
	rctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(rctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w: %s", o.URL, err, strings.TrimSpace(stderr.String()))
	}
	res, err := Parse(stdout.Bytes())
	if err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w", o.URL, err)
	}
	return res, nil
}

// Parse reads the result line the Lua hook printed among wrk's output.
func Parse(out []byte) (Result, error) {
	for _, line := range bytes.Split(out, []byte("\n")) {
		rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte(marker))
		if !ok {
			continue
		}
		var r Result
		dec := json.NewDecoder(bytes.NewReader(rest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return Result{}, fmt.Errorf("result line: %w", err)
		}
		if r.Requests < 0 || r.DurationUS <= 0 {
			return Result{}, fmt.Errorf("result line: %d requests in %d µs", r.Requests, r.DurationUS)
		}
		return r, nil
	}
	return Result{}, fmt.Errorf("no %q line in wrk's output (%d bytes)", strings.TrimSpace(marker), len(out))
}
