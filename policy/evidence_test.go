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
