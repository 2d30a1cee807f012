package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// MaxSize is the largest policy file Load reads.
const MaxSize = 1 << 20

// Load reads the policy file at path and parses it (see Parse). It refuses
// a path that is not a regular file, a file larger than MaxSize and a file
// that is group- or world-writable: whoever can write the policy can switch
// the checks off.
func Load(path string) (*Policy, error) {
	f, st, err := regfile.Open(path)
	if errors.Is(err, regfile.ErrNotRegular) {
		return nil, fmt.Errorf("read policy %s: not a regular file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	defer f.Close()
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("read policy %s: group- or world-writable (mode %#o): run chmod go-w %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("read policy %s: larger than %d bytes", path, MaxSize)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	p.Source = path
	return p, nil
}

// Parse parses a YAML policy strictly, fills what it leaves out with the
// defaults and validates the result. An empty document (or one holding only
// comments, or null) is the default policy. Every problem is reported, each
// as an *Error naming the full dotted key and the line, joined with
// errors.Join.
func Parse(data []byte) (*Policy, error) {
	p := Default()
	sum := sha256.Sum256(data)
	p.SourceSHA256 = hex.EncodeToString(sum[:])
	p.lines = map[string]int{}
	ps := &parser{p: p, e: &errs{}}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		return p, nil
	case err != nil:
		return nil, &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		return nil, &Error{Msg: "more than one YAML document (a second '---')", Line: line}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if noAnchors(root, ps.e) {
		switch {
		case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
			// null document: the defaults
		case root.Kind != yaml.MappingNode:
			ps.e.add("", root.Line, "the policy must be a mapping of keys to values, got %s", describe(root))
		default:
			ps.top(root)
		}
	}
	ps.e.lines = p.lines
	if err := p.validate(ps.e); err != nil {
		return nil, err
	}
	return p, nil
}

// noAnchors refuses anchors, aliases and merge keys anywhere: they hide
// where a value comes from and can blow up in size.
func noAnchors(n *yaml.Node, e *errs) bool {
	ok := true
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			e.add("", n.Line, "YAML anchors and aliases (&, *) are not supported: write the value out")
			ok = false
			return
		}
		if n.Tag == "!!merge" {
			e.add("", n.Line, "YAML merge keys (<<) are not supported: write the keys out")
			ok = false
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return ok
}

type parser struct {
	p *Policy
	e *errs
}

type pair struct {
	key  string
	k, v *yaml.Node
}

// mapping returns the pairs of a mapping node, refusing non-scalar keys
// and duplicates. key is the dotted key of the mapping itself.
func (ps *parser) mapping(key string, n *yaml.Node) ([]pair, bool) {
	if n.Kind != yaml.MappingNode {
		ps.e.add(key, n.Line, "want a mapping, got %s", describe(n))
		return nil, false
	}
	seen := map[string]int{}
	var out []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			ps.e.add(key, k.Line, "a key is %s, want a plain name", describe(k))
			continue
		}
		full := join(key, k.Value)
		if first, dup := seen[k.Value]; dup {
			ps.e.add(full, k.Line, "duplicate key (first given on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		ps.p.lines[full] = k.Line
		out = append(out, pair{key: k.Value, k: k, v: v})
	}
	return out, true
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func (ps *parser) top(root *yaml.Node) {
	pairs, _ := ps.mapping("", root)
	p := ps.p
	keySet := false
	defer func() {
		if !keySet {
			p.AuditKeyPath = DefaultAuditKeyPath(p.AuditLogPath)
		}
	}()
	for _, kv := range pairs {
		keySet = keySet || kv.key == "audit_key_path"
		key, v := kv.key, kv.v
		switch key {
		case "require_tpm":
			ps.boolean(key, v, &p.RequireTPM)
		case "require_secure_boot":
			ps.boolean(key, v, &p.RequireSecureBoot)
		case "run_unlisted_plugins":
			ps.boolean(key, v, &p.RunUnlistedPlugins)
		case "resident_plugins":
			ps.boolean(key, v, &p.ResidentPlugins)
		case "allow_remote_listen":
			ps.boolean(key, v, &p.AllowRemoteListen)
		case "expected_pcrs":
			ps.expectedPCRs(key, v)
		case "boot_reference":
			ps.str(key, v, &p.BootReference)
		case "service_binaries":
			ps.serviceBinaries(key, v)
		case "policy_files":
			ps.policyFiles(key, v)
		case "refresh_interval":
			ps.duration(key, v, &p.RefreshInterval)
		case "plugin_timeout":
			ps.duration(key, v, &p.PluginTimeout)
		case "attestation_timeout":
			ps.duration(key, v, &p.AttestationTimeout)
		case "hmac_key_path":
			ps.str(key, v, &p.HMACKeyPath)
		case "listen":
			ps.str(key, v, &p.Listen)
		case "plugin_dir":
			ps.str(key, v, &p.PluginDir)
		case "api_token_path":
			ps.str(key, v, &p.APITokenPath)
		case "audit_log_path":
			ps.str(key, v, &p.AuditLogPath)
		case "audit_key_path":
			ps.str(key, v, &p.AuditKeyPath)
		case "audit_max_bytes":
			ps.integer(key, v, &p.AuditMaxBytes)
		case "log_level":
			ps.str(key, v, &p.LogLevel)
		case "max_parallel_plugins":
			ps.integer(key, v, &p.MaxParallelPlugins)
		case "attestation_cpu_percent":
			ps.integer(key, v, &p.AttestationCPUPercent)
		case "plugins":
			ps.plugins(key, v)
		case "severity_weights":
			ps.severityWeights(key, v)
		case "thresholds":
			ps.thresholds(key, v)
		case "severity_overrides":
			ps.severityOverrides(key, v)
		default:
			if ps.evidence(key, v) {
				continue
			}
			ps.e.add(key, kv.k.Line, "unknown key%s", suggest(key, topKeys))
		}
	}
}

var topKeys = []string{
	"require_tpm", "require_secure_boot", "expected_pcrs", "service_binaries", "policy_files",
	"refresh_interval", "hmac_key_path", "listen", "plugin_dir", "api_token_path", "audit_log_path",
	"plugins", "run_unlisted_plugins", "severity_weights", "thresholds", "severity_overrides",
	"plugin_timeout", "attestation_timeout", "max_parallel_plugins", "log_level", "resident_plugins",
	keySigningKeyPath, keyEvidenceTPMDevice, keyEvidenceTPMSocket, keyEvidencePCRs,
	"boot_reference", keyVerdictPCR, keyVerdictLogPath,
	"allow_remote_listen", "audit_key_path", "audit_max_bytes",
}

// suggest returns " (did you mean x?)" for a close known key.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return fmt.Sprintf(" (known keys: %s)", strings.Join(known, ", "))
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe says what a node is, for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!null":
		return "no value (null)"
	case "!!bool":
		return "the boolean " + n.Value
	case "!!int":
		return "the integer " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return fmt.Sprintf("%s %q", n.Tag, n.Value)
}

func (ps *parser) boolean(key string, n *yaml.Node, dst *bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			*dst = b
			return
		}
	}
	hint := ""
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "yes", "no", "on", "off", "y", "n", "1", "0":
			hint = " (YAML 1.2: yes/no/on/off are strings)"
		}
	}
	ps.e.add(key, n.Line, "want true or false, got %s%s", describe(n), hint)
}

func (ps *parser) str(key string, n *yaml.Node, dst *string) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		ps.e.add(key, n.Line, "want a string, got %s", describe(n))
		return
	}
	if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool" && n.Tag != "!!timestamp" {
		ps.e.add(key, n.Line, "want a string, got %s", describe(n))
		return
	}
	*dst = n.Value
}

func (ps *parser) integer(key string, n *yaml.Node, dst *int) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var i int
		if err := n.Decode(&i); err == nil {
			*dst = i
			return
		}
		ps.e.add(key, n.Line, "integer %s out of range", n.Value)
		return
	}
	ps.e.add(key, n.Line, "want an integer, got %s", describe(n))
}

func (ps *parser) duration(key string, n *yaml.Node, dst *time.Duration) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		ps.e.add(key, n.Line, "a bare number is not a duration: write it with a unit, e.g. \"%ss\" or \"%sm\"", n.Value, n.Value)
		return
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		ps.e.add(key, n.Line, "want a duration such as \"30s\" or \"5m\", got %s", describe(n))
		return
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		ps.e.add(key, n.Line, "%q is not a duration (want e.g. \"30s\", \"5m\", \"1h30m\"; units ns, us, ms, s, m, h)", n.Value)
		return
	}
	*dst = d
}

// sha returns a lowercased digest string.
func (ps *parser) sha(key string, n *yaml.Node) (string, bool) {
	var s string
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		ps.e.add(key, n.Line, "want a SHA-256 as 64 hex digits, got %s", describe(n))
		return "", false
	}
	s = n.Value
	return strings.ToLower(s), true
}

func (ps *parser) expectedPCRs(key string, n *yaml.Node) {
	pairs, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	out := map[int]string{}
	seen := map[int]string{}
	for _, kv := range pairs {
		full := join(key, kv.key)
		idx, err := strconv.Atoi(kv.key)
		if err != nil || (kv.k.Tag != "!!int" && kv.k.Tag != "!!str") || strings.HasPrefix(kv.key, "+") {
			ps.e.add(full, kv.k.Line, "a PCR index must be a decimal number from 0 to 23")
			continue
		}
		if other, dup := seen[idx]; dup {
			ps.e.add(full, kv.k.Line, "PCR %d is given twice (also as %q)", idx, other)
			continue
		}
		seen[idx] = kv.key
		canon := join(key, strconv.Itoa(idx))
		ps.p.lines[canon] = kv.k.Line
		if v, ok := ps.sha(canon, kv.v); ok {
			out[idx] = v
		}
	}
	ps.p.ExpectedPCRs = out
}

func (ps *parser) serviceBinaries(key string, n *yaml.Node) {
	pairs, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	out := map[string]ServiceBinary{}
	for _, kv := range pairs {
		full := join(key, kv.key)
		var sb ServiceBinary
		switch kv.v.Kind {
		case yaml.ScalarNode:
			ps.str(full, kv.v, &sb.Path)
		case yaml.MappingNode:
			inner, _ := ps.mapping(full, kv.v)
			hasPath := false
			for _, f := range inner {
				switch f.key {
				case "path":
					hasPath = true
					ps.str(join(full, "path"), f.v, &sb.Path)
				case "sha256":
					sb.SHA256, _ = ps.sha(join(full, "sha256"), f.v)
				default:
					ps.e.add(join(full, f.key), f.k.Line, "unknown key (want path and optionally sha256)")
				}
			}
			if !hasPath {
				ps.e.add(full, kv.k.Line, "no path")
			}
		default:
			ps.e.add(full, kv.v.Line, "want a path or {path, sha256}, got %s", describe(kv.v))
		}
		out[kv.key] = sb
	}
	ps.p.ServiceBinaries = out
}

func (ps *parser) policyFiles(key string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		ps.e.add(key, n.Line, "want a list of paths, got %s", describe(n))
		return
	}
	out := []string{}
	for i, c := range n.Content {
		k := fmt.Sprintf("%s[%d]", key, i)
		ps.p.lines[k] = c.Line
		var s string
		ps.str(k, c, &s)
		out = append(out, s)
	}
	ps.p.PolicyFiles = out
}

func (ps *parser) plugins(key string, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	pairs, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	for _, kv := range pairs {
		full := join(key, kv.key)
		pp := PluginPolicy{Enabled: true}
		if !(kv.v.Kind == yaml.ScalarNode && kv.v.Tag == "!!null") {
			fields, _ := ps.mapping(full, kv.v)
			for _, f := range fields {
				fk := join(full, f.key)
				switch f.key {
				case "enabled":
					ps.boolean(fk, f.v, &pp.Enabled)
				case "sha256":
					pp.SHA256, _ = ps.sha(fk, f.v)
				case "timeout":
					ps.duration(fk, f.v, &pp.Timeout)
				case "config":
					if f.v.Kind == yaml.ScalarNode && f.v.Tag == "!!null" {
						continue
					}
					if f.v.Kind != yaml.MappingNode {
						ps.e.add(fk, f.v.Line, "want a mapping, got %s", describe(f.v))
						continue
					}
					if v, ok := ps.convert(fk, f.v); ok {
						pp.Config = v.(map[string]any)
					}
				case "sandbox":
					ps.sandbox(fk, f.v, &pp.Sandbox)
				default:
					ps.e.add(fk, f.k.Line, "unknown key%s", suggest(f.key, []string{"enabled", "sha256", "timeout", "config", "sandbox"}))
				}
			}
		}
		ps.p.Plugins[kv.key] = pp
	}
}

// sandbox parses plugins.<name>.sandbox: what the plugin may touch (for a
// built-in, beyond what its executable declares): lists of clean absolute
// paths, and TCP ports to bind or connect to.
func (ps *parser) sandbox(key string, n *yaml.Node, dst *Grant) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	fields, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	for _, f := range fields {
		fk := join(key, f.key)
		paths := map[string]*[]string{"read_only": &dst.ReadOnly, "read_write": &dst.ReadWrite, "exec": &dst.Exec,
			"devices": &dst.Devices, "unix_sockets": &dst.UnixSockets}
		ports := map[string]*[]uint16{"bind_tcp": &dst.BindTCP, "connect_tcp": &dst.ConnectTCP}
		switch {
		case paths[f.key] != nil:
			ps.sandboxPaths(fk, f.v, paths[f.key])
		case ports[f.key] != nil:
			ps.sandboxPorts(fk, f.v, ports[f.key])
		default:
			ps.e.add(fk, f.k.Line, "unknown key%s", suggest(f.key, []string{"read_only", "read_write", "exec", "devices", "unix_sockets", "bind_tcp", "connect_tcp"}))
		}
	}
}

// sandboxPaths parses a list of clean absolute paths into list.
func (ps *parser) sandboxPaths(key string, n *yaml.Node, list *[]string) {
	if n.Kind != yaml.SequenceNode {
		ps.e.add(key, n.Line, "want a list of absolute paths, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		ik := fmt.Sprintf("%s[%d]", key, i)
		if item.Kind != yaml.ScalarNode || item.Tag != "!!str" {
			ps.e.add(ik, item.Line, "want an absolute path, got %s", describe(item))
			continue
		}
		if !filepath.IsAbs(item.Value) || filepath.Clean(item.Value) != item.Value || strings.ContainsRune(item.Value, 0) {
			ps.e.add(ik, item.Line, "want a clean absolute path, got %q", item.Value)
			continue
		}
		*list = append(*list, item.Value)
	}
}

// sandboxPorts parses a list of TCP ports (1 to 65535) into list.
func (ps *parser) sandboxPorts(key string, n *yaml.Node, list *[]uint16) {
	if n.Kind != yaml.SequenceNode {
		ps.e.add(key, n.Line, "want a list of TCP ports, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		port, err := strconv.ParseUint(item.Value, 10, 16)
		if item.Kind != yaml.ScalarNode || item.Tag != "!!int" || err != nil || port == 0 {
			ps.e.add(fmt.Sprintf("%s[%d]", key, i), item.Line, "want a TCP port from 1 to 65535, got %s", describe(item))
			continue
		}
		*list = append(*list, uint16(port))
	}
}

// convert turns a YAML node into JSON-compatible values.
func (ps *parser) convert(key string, n *yaml.Node) (any, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				ps.e.add(key, k.Line, "key %s is not a string: quote it", describe(k))
				ok = false
				continue
			}
			full := join(key, k.Value)
			if _, dup := out[k.Value]; dup {
				ps.e.add(full, k.Line, "duplicate key")
				ok = false
				continue
			}
			ps.p.lines[full] = k.Line
			cv, cok := ps.convert(full, v)
			ok = ok && cok
			out[k.Value] = cv
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			cv, cok := ps.convert(fmt.Sprintf("%s[%d]", key, i), c)
			ok = ok && cok
			out = append(out, cv)
		}
		return out, ok
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str", "!!timestamp":
			return n.Value, true
		case "!!null":
			return nil, true
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b, true
			}
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, true
			}
			ps.e.add(key, n.Line, "integer %s does not fit in 64 bits", n.Value)
			return nil, false
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, true
			}
			ps.e.add(key, n.Line, "%s is not a finite number (JSON has no .inf or .nan)", n.Value)
			return nil, false
		}
	}
	ps.e.add(key, n.Line, "unsupported value %s", describe(n))
	return nil, false
}

func (ps *parser) severityWeights(key string, n *yaml.Node) {
	pairs, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	for _, kv := range pairs {
		full := join(key, kv.key)
		sev, err := sdk.ParseSeverity(kv.key)
		if err != nil {
			ps.e.add(full, kv.k.Line, "unknown severity (want info, low, medium, high or critical)")
			continue
		}
		w := ps.p.SeverityWeights[sev]
		ps.integer(full, kv.v, &w)
		ps.p.SeverityWeights[sev] = w
	}
}

func (ps *parser) thresholds(key string, n *yaml.Node) {
	pairs, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	for _, kv := range pairs {
		full := join(key, kv.key)
		switch kv.key {
		case "degraded":
			ps.integer(full, kv.v, &ps.p.Thresholds.Degraded)
		case "failed":
			ps.integer(full, kv.v, &ps.p.Thresholds.Failed)
		default:
			ps.e.add(full, kv.k.Line, "unknown key (want degraded and failed)")
		}
	}
}

func (ps *parser) severityOverrides(key string, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	pairs, ok := ps.mapping(key, n)
	if !ok {
		return
	}
	out := map[string]sdk.Severity{}
	for _, kv := range pairs {
		full := join(key, kv.key)
		var name string
		ps.str(full, kv.v, &name)
		if name == "" {
			continue
		}
		sev, err := sdk.ParseSeverity(name)
		if err != nil {
			ps.e.add(full, kv.v.Line, "unknown severity %q (want info, low, medium, high or critical)", name)
			continue
		}
		out[kv.key] = sev
	}
	ps.p.SeverityOverrides = out
}

// lineOf finds the line of key, or of its closest parent.
func lineOf(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}
