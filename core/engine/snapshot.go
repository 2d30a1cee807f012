package engine

import (
	"encoding/json"
	"time"

	"github.com/secure-ai/runtime-attestor/core/state"
)

// Snapshot is the daemon's state as of the last finished attestation. Reads never wait on a running one.
//
// A Snapshot handed out is never modified afterwards: the server caches the
// encoded /api/v1/attest response per Bundle slice.
type Snapshot struct {
	State            state.State
	Bundle           json.RawMessage // signed bundle JSON exactly as signed; nil while pending
	TPMAvailable     bool
	TPMQuoteVerified bool
	SecureBoot       bool
	PolicyDigest     string
	DeploymentDigest string
	ServiceCount     int
	FailureCount     int
	Score            int
	LastAttested     time.Time // zero while pending

	// The counters: attestations run (attest_count), those that
	// ended degraded (degrade_count) and failed (fail_count); and the
	// attestations started by refresh requests.
	AttestCount, DegradeCount, FailCount, RefreshCount uint64

	Plugins []PluginStatus

	// AuditLastSeq and AuditLastHash are the audit log's head when this
	// snapshot was published: the seq of its last record and the SHA-256
	// of that line (what `attestctl audit verify` prints). An operator who
	// keeps them can tell a log cut short at its end, which no hash chain
	// shows by itself. Zero and "" without an audit log.
	AuditLastSeq  uint64
	AuditLastHash string

	// Latched is why the state is failed (nil otherwise): set by the
	// attestation that first failed, kept until the daemon restarts.
	Latched *Latch

	// AuditWriteFailures counts the audit records that could not be
	// written since the daemon started (as of this snapshot).
	AuditWriteFailures uint64
}

// PluginStatus is one check plugin's last run.
type PluginStatus struct {
	Name, Version string
	Duration      time.Duration // last run
	Fault         string        // last fault, "" if none
	FaultCount    uint64        // cumulative
	Findings      int           // last run
	Confinement   string        // what the host imposed on its process, last run
}

// Latch is why the daemon is failed: the attestation that first evaluated
// to failed, when it ran and the findings that made it fail. It stays set
// while the state is failed, i.e. until the daemon restarts.
type Latch struct {
	Since    time.Time
	Sequence uint64
	Score    int
	Findings []state.LatchFinding
}
