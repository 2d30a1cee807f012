// Command racer races the host's exec path, as an attacker who knows the
// host once executed plugins through a link in its run folder: for
// duration_ms it watches the plugin folder and the run folder with inotify
// and keeps trying to put its own executable where the host would execute
// the victim plugin (a symlink in <run_dir>/exec, a rename over the
// victim's file). It answers how many attempts it made and how many
// worked, with the first error of each kind.
//
//	run_dir      the host's private folder
//	plugin_dir   the plugin folder
//	victim       the plugin to impersonate
//	duration_ms  how long to race (default 1000)
package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

type plan struct {
	RunDir     string `json:"run_dir"`
	PluginDir  string `json:"plugin_dir"`
	Victim     string `json:"victim"`
	DurationMS int    `json:"duration_ms"`
}

type stats struct {
	Attempts  int               `json:"attempts"`
	Successes int               `json:"successes"`
	Errors    map[string]string `json:"errors"`
}

func (s *stats) try(what string, err error) {
	s.Attempts++
	if err == nil {
		s.Successes++
		return
	}
	if _, ok := s.Errors[what]; !ok {
		s.Errors[what] = err.Error()
	}
}

func race(ctx context.Context, p plan) stats {
	s := stats{Errors: map[string]string{}}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	s.try("inotify_init", err)
	if err == nil {
		defer unix.Close(fd)
		for _, d := range []string{p.RunDir, filepath.Join(p.RunDir, "exec"), p.PluginDir} {
			_, err := unix.InotifyAddWatch(fd, d, unix.IN_ALL_EVENTS)
			s.try("inotify_add_watch "+d, err)
		}
	}
	self := filepath.Join(p.PluginDir, "attestor-check-"+tp.Name())
	victim := filepath.Join(p.PluginDir, "attestor-check-"+p.Victim)
	link := filepath.Join(p.RunDir, "exec", "attestor-check-"+p.Victim)
	mine := filepath.Join(p.RunDir, "racer-link")
	deadline := time.Now().Add(time.Duration(max(p.DurationMS, 1)) * time.Millisecond)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s.try("mkdir exec folder", os.Mkdir(filepath.Join(p.RunDir, "exec"), 0o755))
		s.try("symlink into the run folder", os.Symlink(self, mine))
		s.try("rename over the exec link", os.Rename(mine, link))
		s.try("symlink over the exec link", os.Symlink(self, link))
		s.try("hard link over the victim", os.Link(self, victim+".new"))
		s.try("rename over the victim", os.Rename(victim+".new", victim))
		s.try("write the victim", writeOver(victim))
		time.Sleep(time.Millisecond)
	}
	return s
}

func writeOver(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func main() {
	var p plan
	plugin.Serve(&tp.Check{
		OnConfigure: func(_ context.Context, cfg sdk.Config) error { return cfg.Decode(&p) },
		OnMeasure: func(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
			r := sdk.NewResult()
			r.Set("race", race(ctx, p))
			r.Add(sdk.Finding{Code: tp.OKCode(), Severity: sdk.SeverityInfo, Message: "raced", Subject: tp.Name()})
			return r, nil
		},
	})
}
