// Package audit is the daemon's hash-chained audit log: JSON Lines, one
// record per line, each record hashing its own content and linking to the
// exact bytes of the line before it, so that an edited, removed, reordered or
// inserted line is detected by Verify. See docs/audit.md for the format.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
)

// Record types the daemon writes. Callers of Append may use any type that
// matches [a-z][a-z0-9_]*, except the ones the log writes itself.
const (
	TypeStart        = "start"
	TypeStop         = "stop"
	TypeAttestation  = "attestation"
	TypeStateChange  = "state_change"
	TypeRefresh      = "refresh"
	TypePluginFault  = "plugin_fault"
	TypePolicyReload = "policy_reload"
	// TypeRefreshRefused: refused refresh requests, coalesced per peer
	// and interval. Noise: the first records dropped when the queue is
	// full, and their loss is never the attestation's problem.
	TypeRefreshRefused = "refresh_refused"

	// Written by the log itself (Append refuses them):

	// TypeRecovered: a torn last line was cut off at Open and saved aside.
	TypeRecovered = "recovered"
	// TypeChainBroken: the existing log's chain is broken; history is left
	// as it is and the chain goes on from its last line.
	TypeChainBroken = "chain_broken"
	// TypeReopened: the file at the path was removed, replaced or truncated
	// while the daemon ran; this record starts the new file and links to the
	// last line the daemon wrote before.
	TypeReopened = "reopened"
	// TypeKeyCreated: the log made a new audit seed and key; the record
	// is the first one keyed with it, and names the seed file.
	TypeKeyCreated = "key_created"
	// TypeDropped: records were lost because writing failed for longer than
	// the in-memory queue could hold.
	TypeDropped = "dropped"
)

// ZeroHash is the prev of the very first record of a log.
var ZeroHash = strings.Repeat("0", 64)

// MaxLine is the longest line the log writes or Verify accepts, in bytes.
const MaxLine = 1 << 20

var (
	typeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func internalType(t string) bool {
	switch t {
	case TypeRecovered, TypeChainBroken, TypeReopened, TypeDropped, TypeKeyCreated:
		return true
	}
	return false
}

// Record is one audit record as it appears on a line.
type Record struct {
	Seq  uint64          `json:"seq"`
	Time string          `json:"time"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	Prev string          `json:"prev"`
	// Mac is the keyed MAC of the record (see key.go), "" in a log
	// without an audit key.
	Mac  string `json:"mac,omitempty"`
	Hash string `json:"hash"`
}

type body struct {
	Seq  uint64          `json:"seq"`
	Time string          `json:"time"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	Prev string          `json:"prev"`
	Mac  string          `json:"mac,omitempty"`
}

// canonicalBody is the JCS form of b without its mac: what the MAC covers.
func canonicalBody(b body) ([]byte, error) {
	b.Mac = ""
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return bundle.Canonical(raw)
}

// lineHash is the hex SHA-256 of a line's bytes, without its newline: the
// prev of the record after it.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// recordHash is the hex SHA-256 of the JCS form of the record without its
// hash member.
func recordHash(b body) (string, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	c, err := bundle.Canonical(raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// encode builds the line (without newline) of a record: the JCS form of
// {data, hash, prev, seq, time, type}.
//
// With ks (the key of record seq), the record also carries its mac.
func encode(seq uint64, t time.Time, typ string, data json.RawMessage, prev string, ks *keyState) ([]byte, error) {
	b := body{Seq: seq, Time: t.UTC().Format(time.RFC3339Nano), Type: typ, Data: data, Prev: prev}
	if ks != nil {
		if ks.seq != seq {
			return nil, fmt.Errorf("audit key is for record %d, not %d", ks.seq, seq)
		}
		m, err := ks.mac(b)
		if err != nil {
			return nil, fmt.Errorf("mac record: %w", err)
		}
		b.Mac = m
	}
	h, err := recordHash(b)
	if err != nil {
		return nil, fmt.Errorf("hash record: %w", err)
	}
	raw, err := json.Marshal(Record{Seq: b.Seq, Time: b.Time, Type: b.Type, Data: b.Data, Prev: b.Prev, Mac: b.Mac, Hash: h})
	if err != nil {
		return nil, err
	}
	return bundle.Canonical(raw)
}

// marshalData encodes data as a canonical JSON object; nil is {}.
func marshalData(data any) (json.RawMessage, error) {
	if data == nil {
		return json.RawMessage(`{}`), nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode audit data: %w", err)
	}
	c, err := bundle.Canonical(raw)
	if err != nil {
		return nil, fmt.Errorf("encode audit data: %w", err)
	}
	if bytes.Equal(c, []byte("null")) {
		return json.RawMessage(`{}`), nil
	}
	if c[0] != '{' {
		return nil, fmt.Errorf("encode audit data: not a JSON object: %.40s", c)
	}
	return c, nil
}

// parseLine checks that line is one well-formed record in canonical form
// with a correct hash. It does not check the chain.
func parseLine(line []byte) (*Record, string) {
	if !json.Valid(line) {
		return nil, "not valid JSON"
	}
	c, err := bundle.Canonical(line)
	if err != nil {
		return nil, fmt.Sprintf("not canonical JSON: %v", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil {
		return nil, "not a JSON object"
	}
	for _, k := range []string{"seq", "time", "type", "data", "prev", "hash"} {
		if _, ok := members[k]; !ok {
			return nil, fmt.Sprintf("no %q member", k)
		}
	}
	want := 6
	if _, ok := members["mac"]; ok {
		want = 7
	}
	if len(members) != want {
		return nil, fmt.Sprintf("%d members, want exactly seq, time, type, data, prev, hash and (keyed) mac", len(members))
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Sprintf("bad member: %v", err)
	}
	if r.Seq == 0 {
		return nil, "seq is 0"
	}
	if ts, err := time.Parse(time.RFC3339Nano, r.Time); err != nil || !strings.HasSuffix(r.Time, "Z") || ts.UTC().Format(time.RFC3339Nano) != r.Time {
		return nil, fmt.Sprintf("time %q is not RFC 3339 UTC", r.Time)
	}
	if !typeRE.MatchString(r.Type) {
		return nil, fmt.Sprintf("type %q is not a lowercase name", r.Type)
	}
	if len(r.Data) == 0 || r.Data[0] != '{' {
		return nil, "data is not an object"
	}
	if !hexRE.MatchString(r.Prev) {
		return nil, "prev is not 64 lowercase hex digits"
	}
	if !hexRE.MatchString(r.Hash) {
		return nil, "hash is not 64 lowercase hex digits"
	}
	if _, ok := members["mac"]; ok && !hexRE.MatchString(r.Mac) {
		return nil, "mac is not 64 lowercase hex digits"
	}
	// The line must be exactly the canonical form: any byte changed that
	// a JSON parser would not notice (spacing, escapes, member order) is
	// still an edit.
	if !bytes.Equal(c, line) {
		return &r, "line is not in canonical (JCS) form: it was edited"
	}
	h, err := recordHash(body{Seq: r.Seq, Time: r.Time, Type: r.Type, Data: r.Data, Prev: r.Prev, Mac: r.Mac})
	if err != nil {
		return &r, fmt.Sprintf("cannot hash record: %v", err)
	}
	if h != r.Hash {
		return &r, "hash does not match the record's content: the record was edited"
	}
	return &r, ""
}
