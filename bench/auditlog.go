package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/policy"
)

// longLog is the live audit file a restart is measured with: a quarter of
// the default audit_max_bytes, where the daemon rotates it, as on an
// appliance that has run for months.
const longLog = policy.DefaultAuditMaxBytes / (audit.Rotations + 1)

// longAudit measures restarts whose live audit log is full (longLog): the
// installation's first start makes the log and its key, the log is then
// lengthened with that key, and each run restarts the daemon under the
// quota until READY=1.
func (b *bench) longAudit() error {
	d, err := b.start(b.cfg.Quota, nil, "")
	if err != nil {
		return err
	}
	l := d.l
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, _, err = d.waitReady(ctx)
	_, serr := d.stop()
	d.g.remove()
	if err = errors.Join(err, serr); err != nil {
		return err
	}
	if err := b.lengthenAudit(l.run, longLog); err != nil {
		return fmt.Errorf("lengthen the audit log: %w", err)
	}
	for range b.cfg.Runs {
		d, err := b.startIn(l, b.cfg.Quota, nil)
		if err != nil {
			return err
		}
		ready, cpu, err := d.waitReady(ctx)
		_, serr := d.stop()
		d.g.remove()
		if err = errors.Join(err, serr); err != nil {
			return err
		}
		b.t.add("readylog/q", ready.Seconds())
		b.t.add("readylogcpu/q", ms(cpu))
	}
	return nil
}

// lengthenAudit appends records to run's audit log, with its key, until
// the file holds size bytes. It writes on the runtime tmpfs, where the
// log's fsync of every record costs nothing, and moves both files back.
func (b *bench) lengthenAudit(run string, size int64) error {
	tmp, err := os.MkdirTemp(b.runtime, "audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	files := []string{"audit.jsonl", "audit.key"}
	for _, f := range files {
		if err := copyFile(filepath.Join(run, f), filepath.Join(tmp, f), 0o600); err != nil {
			return err
		}
	}
	l, err := audit.OpenOptions(filepath.Join(tmp, files[0]), audit.Options{KeyPath: filepath.Join(tmp, files[1])})
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		if fi, err := os.Stat(filepath.Join(tmp, files[0])); err != nil || fi.Size() >= size {
			_ = l.Close()
			if err != nil {
				return err
			}
			break
		}
		if err := l.Append(audit.TypeRefresh, map[string]any{"remote": "127.0.0.1:40000", "authorized": true, "i": i, "note": "a refresh answered with the current bundle"}); err != nil {
			_ = l.Close()
			return err
		}
	}
	for _, f := range files {
		if err := copyFile(filepath.Join(tmp, f), filepath.Join(run, f), 0o600); err != nil {
			return err
		}
	}
	return nil
}
