package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/verdict"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/policy"
)

// signingKeyUsable loads the key at signing_key_path, when set, to refuse
// at start (and at reload) a file that is there but is not a usable key;
// CheckFiles already refused a missing one, naming the command that makes
// it.
func signingKeyUsable(pol *policy.Policy) error {
	if pol.SigningKeyPath == "" {
		return nil
	}
	if _, err := identity.Load(pol.SigningKeyPath); err != nil {
		return fmt.Errorf("signing_key_path: %w (make a new one with `attestctl keygen --out FILE`)", err)
	}
	return nil
}

// identityFor loads the daemon's signing identity under pol: the signing
// key (signing_key_path) and the TPM that quotes evidence. A key that
// cannot be loaded is logged (the engine also reports it in every bundle
// as core.signing_key) and leaves EAR and evidence answering 409. The key
// is read once: rotating it takes a restart. The measurer extends verdicts
// into that TPM (verdict_pcr, verdict_log_path; a change takes a restart).
func (d *daemon) identityFor(pol *policy.Policy) (api.Identity, *verdict.Measurer) {
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
	} else {
		d.logger.Warn(`signing_key_path is "": bundles carry no bundle_signature, EAR and evidence are refused, and attestctl gate --pubkey refuses every answer`)
	}
	var measured verdict.TPM
	if open := tpmOpener(pol); open != nil {
		t := evidence.New(evidence.Options{Open: open, Secret: secret, PCRs: pol.EvidencePCRs,
			VerdictLog: pol.VerdictLogPath, VerdictPCR: pol.VerdictPCR})
		id.TPM, measured = t, t
	}
	m := verdict.New(verdict.Options{TPM: measured, PCR: pol.VerdictPCR, LogPath: pol.VerdictLogPath, Logger: d.logger.Named("verdict")})
	id.Verdicts = m
	return id, m
}

// prepareVerdictLog makes the verdict log's folder before the sandbox is
// applied (a sandbox rule needs the folder to exist); the measurer checks
// its owner and mode.
func prepareVerdictLog(pol *policy.Policy) error {
	if pol.VerdictLogPath == "" || tpmOpener(pol) == nil {
		return nil
	}
	if pol.EvidenceTPMSocket == "" {
		if _, err := os.Stat(pol.EvidenceTPMDevice); err != nil {
			return nil // no TPM here: nothing will be measured
		}
	}
	return os.MkdirAll(filepath.Dir(pol.VerdictLogPath), 0o750)
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
	if pol.VerdictLogPath != "" && tpmOpener(pol) != nil {
		r.ReadWrite = []string{filepath.Dir(pol.VerdictLogPath)}
	}
	return r
}

// unixSocketABI is the first Landlock ABI that confines connecting to a
// pathname Unix socket (LANDLOCK_ACCESS_FS_RESOLVE_UNIX).
const unixSocketABI = 9

// evidenceSocketReach refuses an evidence_tpm_socket that a plugin could
// connect to. Every plugin's seccomp filter denies connect(2) unless its
// grant holds a Unix socket or a TCP port to connect to
// (sandbox.MayConnect); from Landlock ABI 9 on, such a plugin reaches only
// the sockets its grant lists. Below ABI 9 (abi is the kernel's) a plugin
// that may connect at all reaches every pathname Unix socket, the
// evidence TPM's included, and could extend the verdict PCR or exhaust the
// TPM: the policy is refused, naming those plugins. A plugin whose grant
// lists the evidence socket itself was given the TPM by the operator, as
// the tpm plugin is given /dev/tpmrm0.
func evidenceSocketReach(pol *policy.Policy, grants map[string]sandbox.Rules, abi int) error {
	if pol.EvidenceTPMSocket == "" || abi >= unixSocketABI {
		return nil
	}
	sock := filepath.Clean(pol.EvidenceTPMSocket)
	var reach []string
	for name, g := range grants {
		if sandbox.MayConnect(g) && !slices.Contains(g.UnixSockets, sock) {
			reach = append(reach, name)
		}
	}
	if len(reach) == 0 {
		return nil
	}
	slices.Sort(reach)
	return fmt.Errorf("evidence_tpm_socket: %s is reachable by plugin %s: its grant lets it connect (unix_sockets or connect_tcp), "+
		"and Landlock ABI %d (below %d) does not confine connecting to Unix sockets, so it could extend verdict_pcr or use the TPM; "+
		"quote with evidence_tpm_device instead, narrow or disable %s, or run on a kernel with Landlock ABI %d",
		sock, strings.Join(reach, ", "), abi, unixSocketABI, strings.Join(reach, ", "), unixSocketABI)
}
