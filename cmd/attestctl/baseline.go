package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// pluginPrefix is how the plugin host recognises a check plugin in
// plugin_dir (core/pluginhost.FilePrefix).
const pluginPrefix = "attestor-check-"

// baselineOpts are the flags of attestctl baseline.
type baselineOpts struct {
	policyPath, daemon, out, bootRef string
	acceptFindings                   bool
	timeout                          time.Duration
}

func (a *app) baseline(args []string) int {
	fs := a.flagSet("baseline", "[--policy FILE] [--daemon PATH] [-o FILE] [--boot-reference FILE] [--accept-findings]",
		"On a machine known to be good, measures it with the real plugins (runtime-attestor\n"+
			"--once on a permissive copy of the policy) and writes a production policy that\n"+
			"pins what it measured: every plugin's SHA-256, every service binary's digest,\n"+
			"the ostree deployment reference and, when a TPM is there, the boot: a boot\n"+
			"reference recorded from the event log the tpm plugin replayed (boot_reference,\n"+
			"written beside -o as boot-reference.yaml, or to --boot-reference), and the raw\n"+
			"values of the PCRs it does not cover (expected_pcrs); it requires the TPM and\n"+
			"Secure Boot when present, signs bundles (signing_key_path) and sets\n"+
			"run_unlisted_plugins: false. The\n"+
			"other settings of --policy are carried over. Refuses when the measurement has\n"+
			"findings of medium severity or more (the machine is not known to be good),\n"+
			"unless --accept-findings. See docs/attestctl.md.")
	var o baselineOpts
	fs.StringVar(&o.policyPath, "policy", policy.DefaultPath, "the policy to start from (paths, plugin configs, weights)")
	fs.StringVar(&o.daemon, "daemon", "", "the runtime-attestor executable (default: beside attestctl, then $PATH)")
	fs.StringVar(&o.out, "o", "-", "where to write the policy (- for standard output); a file is created with mode 0600")
	fs.StringVar(&o.bootRef, "boot-reference", "", "where to write the boot reference (default: boot-reference.yaml beside -o)")
	fs.BoolVar(&o.acceptFindings, "accept-findings", false, "write the policy even when the measurement has findings of medium severity or more")
	fs.DurationVar(&o.timeout, "timeout", 0, "how long the measurement may take (default: the policy's attestation_timeout + 30s)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(fs, "baseline takes no arguments")
	}
	base, doc, err := loadBase(o.policyPath)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	daemon, err := findDaemon(o.daemon)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	if o.timeout == 0 {
		o.timeout = base.AttestationTimeout + 30*time.Second
	}
	b, err := a.measure(daemon, base, doc, o.timeout)
	if err != nil {
		return a.fail(exitFail, "baseline: %v", err)
	}
	pins, err := derivePins(base, b)
	if err != nil {
		return a.fail(exitFail, "baseline: %v", err)
	}
	for _, w := range pins.warnings {
		fmt.Fprintf(a.stderr, "attestctl: baseline: %s\n", w)
	}
	if bad := blocking(b); len(bad) > 0 && !o.acceptFindings {
		return a.fail(exitFail, "baseline: this machine does not measure as good, so its measurements are not a baseline:\n  %s\nfix them, or pass --accept-findings to pin it as it is", strings.Join(bad, "\n  "))
	}
	if err := a.writeBootReference(pins, o); err != nil {
		return a.fail(exitUsage, "baseline: %v", err)
	}
	out, err := renderBaseline(doc, pins, o.policyPath, time.Now().UTC())
	if err != nil {
		return a.fail(exitFail, "baseline: %v", err)
	}
	if _, err := policy.Parse(out); err != nil { // never write a policy the daemon refuses
		return a.fail(exitFail, "baseline: the policy written does not load (a bug; please report it): %v", err)
	}
	if err := a.writeOut(o.out, out); err != nil {
		return a.fail(exitUsage, "baseline: %v", err)
	}
	if o.out != "-" {
		fmt.Fprintf(a.stderr, "attestctl: baseline: wrote %s (%d plugins, %d services pinned); start the daemon with it: runtime-attestor --config %s\n",
			o.out, len(pins.plugins), len(pins.services), o.out)
	}
	return exitOK
}

// writeBootReference writes the recorded boot reference where the policy
// written will name it (boot_reference).
func (a *app) writeBootReference(p *pins, o baselineOpts) error {
	if p.bootRef == nil {
		return nil
	}
	path, err := bootReferencePath(o.bootRef, o.out)
	if err != nil {
		return err
	}
	if path == "" {
		fmt.Fprintf(a.stderr, "attestctl: baseline: the policy goes to standard output: pass --boot-reference FILE to pin this boot's events; expected_pcrs pins the raw PCR values\n")
		p.bootRef = nil
		return nil
	}
	raw, err := p.bootRef.Marshal()
	if err != nil {
		return err
	}
	if err := writeAtomic(path, raw); err != nil {
		return err
	}
	p.bootRefPath = path
	fmt.Fprintf(a.stderr, "attestctl: baseline: wrote the boot reference %s (PCRs %s); install it there, or move it and change boot_reference\n", path, joinPCRs(p.bootRef.PCRList()))
	return nil
}

// loadBase loads the policy to start from, as the daemon would (strict
// parse, file checks), and as a plain YAML document to carry its keys over.
func loadBase(path string) (*policy.Policy, map[string]any, error) {
	p, err := policy.Load(path)
	if err != nil {
		return nil, nil, err
	}
	raw, err := regfile.Read(path, policy.MaxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	return p, doc, nil
}

// findDaemon returns the runtime-attestor executable to measure with.
func findDaemon(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "runtime-attestor")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	p, err := exec.LookPath("runtime-attestor")
	if err != nil {
		return "", errors.New("runtime-attestor not found beside attestctl nor in $PATH: pass --daemon PATH")
	}
	return p, nil
}

// permissive returns the base document with every pin and requirement
// taken out, so that each plugin runs and reports what it measures.
func permissive(doc map[string]any) map[string]any {
	d := deepCopy(doc).(map[string]any)
	d["require_tpm"] = false
	d["require_secure_boot"] = false
	d["expected_pcrs"] = map[string]any{}
	d["boot_reference"] = ""
	// Measuring needs no signature: the key may not exist yet (the unit
	// makes it at first start) or be the service user's alone.
	d["signing_key_path"] = ""
	d["run_unlisted_plugins"] = true
	if sb, ok := d["service_binaries"].(map[string]any); ok {
		for name, v := range sb {
			if m, ok := v.(map[string]any); ok {
				delete(m, "sha256")
				sb[name] = m
			}
		}
	}
	if pl, ok := d["plugins"].(map[string]any); ok {
		for _, v := range pl {
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			delete(m, "sha256")
			if cfg, ok := m["config"].(map[string]any); ok {
				delete(cfg, "expected_deployments")
			}
		}
	}
	return d
}

// measure runs the daemon once on the permissive policy and returns the
// bundle. Exit 0, 1 and 2 (attested, degraded, failed) all carry a bundle.
func (a *app) measure(daemon string, base *policy.Policy, doc map[string]any, timeout time.Duration) (*bundle.Bundle, error) {
	dir, err := os.MkdirTemp("", "attestctl-baseline-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	raw, err := yaml.Marshal(permissive(doc))
	if err != nil {
		return nil, fmt.Errorf("encode the measuring policy: %w", err)
	}
	path := filepath.Join(dir, "measure.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, daemon, "--once", "--config", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() >= 0 && exit.ExitCode() <= 2) {
		return nil, fmt.Errorf("%s --once (policy %s with pins removed): %w\n%s", daemon, base.Source, err, tailLines(stderr.String(), 20))
	}
	b := new(bundle.Bundle)
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), b); err != nil {
		return nil, fmt.Errorf("%s --once printed no bundle: %w\n%s", daemon, err, tailLines(stderr.String(), 20))
	}
	return b, nil
}

// blocking lists the findings of medium severity or more, which mean the
// machine is not in a state worth pinning.
func blocking(b *bundle.Bundle) []string {
	var out []string
	for _, f := range b.Failures {
		if f.Severity >= sdk.SeverityMedium {
			out = append(out, fmt.Sprintf("%s %s (%s): %s", f.Severity, f.Code, orDash(f.Subject), clean(f.Message)))
		}
	}
	sort.Strings(out)
	return out
}

// hashFile returns the lowercase hex SHA-256 of the regular file at path.
func hashFile(path string) (string, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeOut writes data to path (mode 0600) or to stdout for "-".
func (a *app) writeOut(path string, data []byte) error {
	if path == "-" {
		_, err := a.stdout.Write(data)
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// deepCopy copies a decoded YAML value.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}
