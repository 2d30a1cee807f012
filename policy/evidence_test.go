package policy

import (
	"slices"
	"strings"
	"testing"
)

func TestEvidenceKeys(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte("signing_key_path: /var/lib/x/signing.key\nevidence_tpm_socket: /run/swtpm.sock\nevidence_pcrs: [7, 0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.SigningKeyPath != "/var/lib/x/signing.key" || p.EvidenceTPMSocket != "/run/swtpm.sock" || !slices.Equal(p.EvidencePCRs, []int{7, 0}) || p.EvidenceTPMDevice != DefaultEvidenceTPMDevice {
		t.Errorf("parsed %+v", p)
	}
	for i, tc := range []struct{ yaml, key, msg string }{
		{"signing_key_path: key\n", "signing_key_path", "not an absolute path"},
		{"evidence_tpm_device: dev/tpm0\n", "evidence_tpm_device", "not an absolute path"},
		{"evidence_pcrs: [24]\n", "evidence_pcrs[0]", "not a PCR index"},
		{"evidence_pcrs: [1, 1]\n", "evidence_pcrs[1]", "listed twice"},
		{"evidence_pcrs: []\n", "evidence_pcrs", "at least one PCR"},
		{"evidence_pcrs: 7\n", "evidence_pcrs", "want a list"},
		{"evidence_pcrs: [x]\n", "evidence_pcrs[0]", "want an integer"},
		{"signing_key_pth: /k\n", "signing_key_pth", "did you mean signing_key_path"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Test %d: %q: got %v, want %s: %s", i, tc.yaml, err, tc.key, tc.msg)
		}
	}
}

func TestVerdictKeys(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte("verdict_pcr: 12\nverdict_log_path: /run/x/v.log\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.VerdictPCR != 12 || p.VerdictLogPath != "/run/x/v.log" {
		t.Errorf("parsed %d %q", p.VerdictPCR, p.VerdictLogPath)
	}
	if p, err := Parse([]byte("verdict_log_path: \"\"\n")); err != nil || p.VerdictLogPath != "" || p.VerdictPCR != DefaultVerdictPCR {
		t.Errorf("verdict_log_path \"\": %v %+v", err, p)
	}
	for i, tc := range []struct{ yaml, key, msg string }{
		{"verdict_pcr: 16\n", "verdict_pcr", "can be reset"},
		{"verdict_pcr: 23\n", "verdict_pcr", "can be reset"},
		{"verdict_pcr: -1\n", "verdict_pcr", "not a PCR index"},
		{"verdict_pcr: x\n", "verdict_pcr", "want an integer"},
		{"verdict_log_path: run/v.log\n", "verdict_log_path", "not an absolute path"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Test %d: %q: got %v, want %s: %s", i, tc.yaml, err, tc.key, tc.msg)
		}
	}
}
