// Command orphan spawns, from Measure, a grandchild that tries to outlive
// it: the plugin starts a child (itself, re-executed), the child starts the
// grandchild in a new session (setsid) and exits at once (the double fork),
// and the grandchild ignores SIGTERM, SIGHUP and SIGINT, holds the daemon's
// stdout and stderr pipes open, writes its process id (as the daemon's PID
// namespace sees it) to pid_file and sleeps forever.
//
// Config:
//
//	pid_file  where the grandchild writes its process id (required)
//	setsid    start the grandchild in a new session (default true); false
//	          leaves it in the plugin's process group
//	hang      after spawning, never answer (default false)
//
// Measure answers only once pid_file exists, so the caller knows the pid.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

const (
	childArg      = "orphan-child"
	grandchildArg = "orphan-grandchild"
)

func main() {
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case childArg:
			child(os.Args[2], os.Args[3] == "true")
			return
		case grandchildArg:
			grandchild(os.Args[2])
			return
		}
	}
	var cfg struct {
		PIDFile string `json:"pid_file"`
		Setsid  *bool  `json:"setsid"`
		Hang    bool   `json:"hang"`
	}
	plugin.Serve(&tp.Check{
		OnConfigure: func(_ context.Context, c sdk.Config) error {
			if err := c.Decode(&cfg); err != nil {
				return err
			}
			if cfg.PIDFile == "" {
				return sdk.ConfigErrorf("pid_file", "required")
			}
			return nil
		},
		OnMeasure: func(ctx context.Context, req sdk.Request) (*sdk.Result, error) {
			setsid := cfg.Setsid == nil || *cfg.Setsid
			// Start the child with the original stdout and stderr (the
			// daemon's pipes), not go-plugin's redirected os.Stdout.
			cmd := exec.CommandContext(ctx, "/proc/self/exe", childArg, cfg.PIDFile, strconv.FormatBool(setsid))
			cmd.Stdout = os.NewFile(1, "stdout")
			cmd.Stderr = os.NewFile(2, "stderr")
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("run child: %w", err)
			}
			pid, err := waitPID(ctx, cfg.PIDFile)
			if err != nil {
				return nil, err
			}
			if cfg.Hang {
				select {}
			}
			res := tp.OK(req)
			res.Set("grandchild_pid", pid)
			return res, nil
		},
	})
}

// child starts the grandchild and exits without waiting for it.
func child(pidFile string, setsid bool) {
	cmd := exec.Command("/proc/self/exe", grandchildArg, pidFile)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "orphan child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// grandchild records its pid and sleeps forever, deaf to polite signals.
func grandchild(pidFile string) {
	signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
	pid := tp.PID()
	tmp := pidFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o600); err == nil {
		_ = os.Rename(tmp, pidFile)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func waitPID(ctx context.Context, pidFile string) (int, error) {
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil {
			return strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
