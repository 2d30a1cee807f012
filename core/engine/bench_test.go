package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// wireHost answers every Measure with the binaries plugin's answer for n
// service binaries as it arrives on the wire: the measurements JSON the
// SDK sends, decoded and validated by the daemon's end of the protocol
// (wire.MeasurementFromProto, wire.ValidateMeasurement), as the host does
// after a plugin's Measure RPC. It leaves out the plugin processes, whose
// cost BenchmarkPluginStart (core/pluginhost) measures, to time what the
// daemon does with a large answer.
type wireHost struct {
	desc sdk.Description
	resp *pb.MeasureResponse
}

func newWireHost(tb testing.TB, n int) *wireHost {
	tb.Helper()
	type report struct {
		Name   string `json:"name"`
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		Status string `json:"status"`
	}
	sums := make(map[string]string, n)
	reports := make([]report, 0, n)
	for i := range n {
		name := fmt.Sprintf("svc%04d", i)
		sum := sha256.Sum256([]byte(name))
		d := hex.EncodeToString(sum[:])
		sums[name] = d
		reports = append(reports, report{Name: name, Path: "/usr/libexec/secure-ai/" + name, Size: int64(4096 + 61*i), SHA256: d, Status: "ok"})
	}
	res := sdk.NewResult()
	res.Set("service_digests", sums)
	res.Set("services", reports)
	raw, err := json.Marshal(res.Measurements)
	if err != nil {
		tb.Fatal(err)
	}
	return &wireHost{
		desc: sdk.Description{Name: "binaries", Version: "1.0.0", Fills: []string{"service_digests"}},
		resp: &pb.MeasureResponse{MeasurementsJson: raw},
	}
}

func (h *wireHost) Measure(context.Context, []byte) []pluginhost.Result {
	m, err := wire.MeasurementFromProto(h.resp)
	if err == nil {
		err = wire.ValidateMeasurement(h.desc, m)
	}
	if err != nil {
		panic(err)
	}
	return []pluginhost.Result{{Name: "binaries", Version: "1.0.0", SHA256: "ab", Fills: h.desc.Fills,
		Started: time.Now(), Duration: time.Millisecond, Measurements: m.Measurements, Findings: m.Findings}}
}

func (h *wireHost) Close() {}

// BenchmarkAttestation2048 is one on-demand attestation of 2,048 service
// binaries after the plugins answered: the answer decoded and validated,
// merged, weighed, signed (Ed25519 and HMAC), audited (a real audit log
// under b.TempDir) and published. Pacing is off: it adds wall time, not
// work.
func BenchmarkAttestation2048(b *testing.B) {
	dir := b.TempDir()
	pol := policy.Default()
	pol.PluginDir = filepath.Join(dir, "plugins")
	pol.HMACKeyPath = filepath.Join(dir, "hmac.key")
	pol.AuditLogPath = filepath.Join(dir, "audit.jsonl")
	pol.AttestationCPUPercent = 0 // the work, not the pauses between it
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(pol.HMACKeyPath, key, 0o600); err != nil {
		b.Fatal(err)
	}
	pol.SigningKeyPath = filepath.Join(dir, "signing.key")
	if _, err := identity.WriteNew(identity.KeyEd25519, pol.SigningKeyPath, pol.SigningKeyPath+".pub"); err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(pol.AuditLogPath, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	e, err := New(Options{Policy: pol, Host: newWireHost(b, 2048), Audit: log, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := e.Refresh(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Bundle) < 2048*64 {
			b.Fatalf("bundle of %d bytes", len(s.Bundle))
		}
	}
}
