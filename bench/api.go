package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// probeEvery is the pace of the latency probe: one GET /api/v1/verify
// every 20 ms, each sent once the previous answer arrived.
const probeEvery = 20 * time.Millisecond

// probe requests url every probeEvery until ctx ends and returns the
// latency of every request. A transport error or a status other than
// 200 is an error: the probe measures a daemon that is attested.
func probe(ctx context.Context, url string, answered *atomic.Int64) ([]time.Duration, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var lat []time.Duration
	for {
		select {
		case <-ctx.Done():
			return lat, nil
		case <-tick.C:
		}
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			if ctx.Err() != nil {
				return lat, nil
			}
			return lat, fmt.Errorf("probe %s: %w", url, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		answered.Add(1)
		if err != nil || resp.StatusCode != http.StatusOK {
			return lat, fmt.Errorf("probe %s: status %d, %v", url, resp.StatusCode, err)
		}
	}
}

// probeWhile probes url while work runs and returns the latencies. work
// is given the count of requests answered so far.
func probeWhile(url string, work func(answered func() int64) error) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	type answer struct {
		lat []time.Duration
		err error
	}
	ch := make(chan answer, 1)
	var n atomic.Int64
	ended := make(chan struct{})
	go func() {
		lat, err := probe(ctx, url, &n)
		close(ended)
		ch <- answer{lat, err}
	}()
	// A probe that stopped on an error answers no more: work need not
	// wait for it, and the error is returned below.
	werr := work(func() int64 {
		select {
		case <-ended:
			return math.MaxInt64
		default:
			return n.Load()
		}
	})
	cancel()
	a := <-ch
	if werr != nil {
		return nil, werr
	}
	return a.lat, a.err
}

// serveEnv names the body file when the benchmark executable runs as the
// bare HTTP baseline: a net/http server on a free loopback port (printed on
// stdout) answering every request with that body as JSON.
const serveEnv = "ATTESTOR_BENCH_SERVE"

func serveBare(bodyFile string) error {
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
}

// bareLatency starts the bare server in g with GOMAXPROCS=1, probes it for
// d and stops it.
func bareLatency(self, bodyFile string, g *group, d time.Duration) ([]time.Duration, error) {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", serveEnv+"="+bodyFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := g.start(cmd); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("bare server: %w", err)
	}
	return probeWhile("http://"+strings.TrimSpace(addr)+"/api/v1/verify", func(func() int64) error {
		time.Sleep(d)
		return nil
	})
}
