// Package wire is the check plugin protocol, both ends of it, without
// go-plugin: the handshake's cookie and versions, the gRPC server that
// adapts an sdk.Check (with the check's sandbox applied after its first
// Configure and the sandbox's denials explained in its answers), Serve
// (the plugin's side of go-plugin's protocol, so a plugin executable links
// no go-plugin), a typed client over the gRPC service, and the protocol
// rules (ValidateDescription, ValidateMeasurement) that the daemon and
// the sdktest harness enforce on every answer. The plugin host
// (core/pluginhost), sdk/plugin and sdk/sdktest share it; package binding
// ties it to go-plugin for the daemon's client. It is internal, so a
// vendor's code never depends on it.
package wire

import (
	"encoding/json"
	"fmt"

	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// ProtocolVersion is the version of the plugin protocol this module speaks
// (go-plugin's application protocol version; check.proto).
const ProtocolVersion = 1

// LogLevelEnv names the environment variable through which the daemon sets a
// plugin's log level (trace, debug, info, warn, error).
const LogLevelEnv = "RUNTIME_ATTESTOR_PLUGIN_LOG_LEVEL"

// DescriptionFromProto converts a description.
func DescriptionFromProto(p *pb.DescribeResponse) sdk.Description {
	d := sdk.Description{Name: p.GetName(), Version: p.GetVersion(), Summary: p.GetDescription(), Fills: p.GetFills()}
	for _, f := range p.GetFindings() {
		d.Findings = append(d.Findings, sdk.FindingSpec{Code: f.GetCode(), DefaultSeverity: sdk.Severity(f.GetDefaultSeverity()), Description: f.GetDescription()})
	}
	return d
}

// Measurement is a measurement as the daemon receives it.
type Measurement struct {
	// Measurements maps a key to its JSON value, undecoded.
	Measurements map[string]json.RawMessage
	Findings     []sdk.Finding
}

// MeasurementFromProto decodes a response. A response whose measurements
// are not one JSON object is a protocol error.
func MeasurementFromProto(p *pb.MeasureResponse) (*Measurement, error) {
	m := &Measurement{Measurements: map[string]json.RawMessage{}}
	if raw := p.GetMeasurementsJson(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &m.Measurements); err != nil {
			return nil, &ProtocolError{Msg: fmt.Sprintf("measurements are not a JSON object: %v", err)}
		}
		if m.Measurements == nil {
			m.Measurements = map[string]json.RawMessage{}
		}
	}
	for _, f := range p.GetFindings() {
		m.Findings = append(m.Findings, sdk.Finding{Code: f.GetCode(), Severity: sdk.Severity(f.GetSeverity()), Message: f.GetMessage(), Subject: f.GetSubject()})
	}
	return m, nil
}
