package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/secure-ai/runtime-attestor/plugins/binaries"
)

// serviceFiles writes n files standing in for service executables, sizes
// log-uniform from 4 KiB to 256 KiB (many small, a few large), and returns
// the service_binaries map and the paths in order.
func serviceFiles(dir string, n int) (map[string]string, []string, int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, 0, err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'}))
	services := make(map[string]string, n)
	paths := make([]string, n)
	var total int64
	buf := make([]byte, 256<<10)
	for i := range n {
		size := int(4096 * math.Pow(64, rng.Float64()))
		for j := range buf[:size] {
			buf[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("svc%04d", i)
		paths[i] = filepath.Join(dir, name)
		if err := os.WriteFile(paths[i], buf[:size], 0o755); err != nil {
			return nil, nil, 0, err
		}
		services[name] = paths[i]
		total += int64(size)
	}
	return services, paths, total, nil
}

// openssl hashes paths with `openssl dgst -sha256` in one process, in g
// (nil: unconfined), and returns its wall and CPU time.
func openssl(paths []string, g *group) (wall, cpu time.Duration, err error) {
	args := append([]string{"dgst", "-sha256"}, paths...)
	cmd := exec.Command("openssl", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	var cpu0 time.Duration
	if g != nil {
		if cpu0, err = g.cpu(); err != nil {
			return 0, 0, err
		}
	}
	t0 := time.Now()
	run := cmd.Run
	if g != nil {
		run = func() error {
			if err := g.start(cmd); err != nil {
				return err
			}
			return cmd.Wait()
		}
	}
	if err := run(); err != nil {
		return 0, 0, fmt.Errorf("openssl dgst: %w", err)
	}
	wall = time.Since(t0)
	if got := bytes.Count(out.Bytes(), []byte("\n")); got != len(paths) {
		return 0, 0, fmt.Errorf("openssl dgst printed %d digests for %d files", got, len(paths))
	}
	u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(u.Utime.Nano() + u.Stime.Nano())
	if g != nil {
		cpu1, err := g.cpu()
		return wall, cpu1 - cpu0, err
	}
	return wall, cpu, nil
}

// hashInProcess hashes paths with the binaries plugin's own code
// (binaries.HashFiles, its default two workers) at the given GOMAXPROCS and
// returns wall and CPU time of this process.
func hashInProcess(paths []string, procs int) (wall, cpu time.Duration, err error) {
	targets := make([]binaries.Target, len(paths))
	for i, p := range paths {
		targets[i] = binaries.Target{Name: filepath.Base(p), Path: p}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	cpu0 := selfCPU()
	t0 := time.Now()
	digests, err := binaries.HashFiles(context.Background(), targets, binaries.DefaultMaxParallel)
	wall, cpu = time.Since(t0), selfCPU()-cpu0
	if err != nil {
		return 0, 0, err
	}
	for _, d := range digests {
		if d.Err != nil {
			return 0, 0, d.Err
		}
	}
	return wall, cpu, nil
}

func selfCPU() time.Duration {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
