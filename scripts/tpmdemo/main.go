// Command tpmdemo drives the swtpm of `make tpm-demo` (scripts/tpm-demo.sh):
// it plays the firmware that measures a boot into PCRs 0-7, prints the PCR
// values to pin in the demo policy, and extends a PCR on request so that a
// newcomer can watch the attestor notice. It speaks to swtpm with go-tpm
// through the tpm plugin's own transport, never through tpm2-tools.
//
//	tpmdemo -socket PATH boot              measure the demo boot into PCRs 0-7
//	tpmdemo -socket PATH pcrs              print PCRs 0-7 as a YAML flow mapping
//	tpmdemo -socket PATH extend PCR EVENT  extend SHA-256(EVENT) into PCR
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/plugins/tpm"
)

// bootEvents is what the demo's "firmware" measures, one event per PCR, as
// a PC's firmware measures its code, configuration and boot loader.
var bootEvents = []string{
	"demo firmware code (PCR 0: SRTM, BIOS)",
	"demo firmware configuration (PCR 1)",
	"demo option ROMs (PCR 2)",
	"demo option ROM configuration (PCR 3)",
	"demo boot loader (PCR 4: IPL code)",
	"demo boot loader configuration, GPT (PCR 5)",
	"demo host platform events (PCR 6)",
	"demo Secure Boot policy (PCR 7)",
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tpmdemo: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tpmdemo", flag.ContinueOnError)
	socket := fs.String("socket", "", "swtpm data socket (swtpm socket --server type=unixio,path=...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || fs.NArg() == 0 {
		return errors.New("usage: tpmdemo -socket PATH boot | pcrs | extend PCR EVENT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := tpmio.DialSocket(ctx, *socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	t := tpmio.Bind(ctx, conn, tpmio.Policy{Retries: 5, Delay: 100 * time.Millisecond})

	switch cmd := fs.Arg(0); cmd {
	case "boot":
		for pcr, ev := range bootEvents {
			if err := extend(t, pcr, ev); err != nil {
				return err
			}
		}
		return nil
	case "pcrs":
		values, err := tpm.ReadPCRs(t, []int{0, 1, 2, 3, 4, 5, 6, 7})
		if err != nil {
			return err
		}
		parts := make([]string, 0, len(values))
		for p := range 8 {
			parts = append(parts, fmt.Sprintf("%q: %q", strconv.Itoa(p), hex.EncodeToString(values[p])))
		}
		_, err = fmt.Fprintf(out, "{%s}\n", strings.Join(parts, ", "))
		return err
	case "extend":
		if fs.NArg() != 3 {
			return errors.New("usage: tpmdemo -socket PATH extend PCR EVENT")
		}
		pcr, err := strconv.Atoi(fs.Arg(1))
		if err != nil || pcr < 0 || pcr > 23 {
			return fmt.Errorf("PCR %q is not a number from 0 to 23", fs.Arg(1))
		}
		if err := extend(t, pcr, fs.Arg(2)); err != nil {
			return err
		}
		values, err := tpm.ReadPCRs(t, []int{pcr})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "PCR %d is now %x\n", pcr, values[pcr])
		return err
	default:
		return fmt.Errorf("unknown command %q (want boot, pcrs or extend)", cmd)
	}
}

// extend extends SHA-256(event) into the SHA-256 bank of PCR pcr.
func extend(t transport.TPM, pcr int, event string) error {
	d := sha256.Sum256([]byte(event))
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("extend PCR %d: %w", pcr, err)
	}
	return nil
}
