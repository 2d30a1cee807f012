package daemon

import (
	"context"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/plugins/tpm/tpmio"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk/sandbox"
)

// identityFor loads the daemon's signing identity under pol: the signing
// key (signing_key_path) and the TPM that quotes evidence. A key that
// cannot be loaded is logged (the engine also reports it in every bundle
// as core.signing_key) and leaves EAR and evidence answering 409. The key
// is read once: rotating it takes a restart.
func (d *daemon) identityFor(pol *policy.Policy) api.Identity {
	id := api.Identity{Version: Version}
	var secret []byte
	if pol.SigningKeyPath != "" {
		s, err := identity.Load(pol.SigningKeyPath)
		if err != nil {
			d.logger.Error("signing key unusable: bundles carry no bundle_signature, EAR and evidence are refused", "error", err)
		} else {
			id.Signer = s
			secret = s.DeriveSecret(evidence.SecretLabel)
			d.logger.Info("signing identity", "alg", s.Alg(), "key_id", s.KeyID())
		}
	}
	if open := tpmOpener(pol); open != nil {
		id.TPM = evidence.New(evidence.Options{Open: open, Secret: secret, PCRs: pol.EvidencePCRs})
	}
	return id
}

// tpmOpener opens the evidence TPM: the swtpm socket when set, else the
// device; nil when neither is.
func tpmOpener(pol *policy.Policy) func(context.Context) (tpmio.Conn, error) {
	switch {
	case pol.EvidenceTPMSocket != "":
		sock := pol.EvidenceTPMSocket
		return func(ctx context.Context) (tpmio.Conn, error) { return tpmio.DialSocket(ctx, sock) }
	case pol.EvidenceTPMDevice != "":
		dev := pol.EvidenceTPMDevice
		return func(context.Context) (tpmio.Conn, error) { return tpmio.OpenDevice(dev) }
	}
	return nil
}

// identityRules is what the evidence TPM needs in the daemon's sandbox
// (the signing key's folder is among daemonPaths' secrets).
func identityRules(pol *policy.Policy) sandbox.Rules {
	var r sandbox.Rules
	switch {
	case pol.EvidenceTPMSocket != "":
		r.UnixSockets = []string{pol.EvidenceTPMSocket}
	case pol.EvidenceTPMDevice != "":
		r.Devices = []string{pol.EvidenceTPMDevice}
	}
	return r
}
