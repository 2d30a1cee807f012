package launch

import (
	"encoding/json"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// TestGrantFileSealed: the grant the host hands the launcher reads back as
// written, and nobody holding the descriptor can change them.
func TestGrantFileSealed(t *testing.T) {
	t.Parallel()
	want := Spec{Rules: sandbox.Rules{ReadOnly: []string{"/etc/vendor"}, ConnectTCP: []uint16{443}}}
	f, err := GrantFile(want)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	var got Spec
	if err := json.Unmarshal(raw, &got); err != nil || got.Rules.ReadOnly[0] != "/etc/vendor" || got.Rules.ConnectTCP[0] != 443 {
		t.Fatalf("read back %s (%v)", raw, err)
	}
	if _, err := f.WriteAt([]byte("{}"), 0); err == nil {
		t.Error("the sealed grant was written")
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_WRITE == 0 || seals&unix.F_SEAL_SEAL == 0 {
		t.Errorf("seals %#x (%v)", seals, err)
	}
}
