package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/secure-ai/runtime-attestor/core/audit"
)

func (a *app) audit(args []string) int {
	fs := a.flagSet("audit", "verify [--seed FILE] LOG...",
		"verify LOG... checks the hash chain of an audit log (JSON Lines): every record's\n"+
			"hash, its seq and its link to the line before. Give a rotated log oldest first\n"+
			"(LOG.3 LOG.2 LOG.1 LOG): each file must continue the one before. With --seed FILE\n"+
			"(the seed the daemon wrote once to <audit_key_path>.seed) it also checks every\n"+
			"record's MAC, so a rewrite that recomputed every hash is caught too. It prints the\n"+
			"number of records and the last seq, or the first broken record (file, line, seq,\n"+
			"why) and exits 1. Exit 2 when a file cannot be read.")
	seedFile := fs.String("seed", "", "the audit seed `FILE` (verify): check every record's MAC")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return a.usageError(fs, "audit needs a subcommand: verify [--seed FILE] LOG...")
	}
	if pos[0] != "verify" {
		return a.usageError(fs, "unknown audit subcommand %q (want verify)", pos[0])
	}
	files := pos[1:]
	if len(files) == 0 {
		return a.usageError(fs, "audit verify needs at least one LOG file")
	}
	var seed *audit.Seed
	if *seedFile != "" {
		s, err := audit.ReadSeed(*seedFile)
		if err != nil {
			return a.fail(exitUsage, "audit verify: %v", err)
		}
		seed = &s
	}
	for _, path := range files {
		if _, err := os.Stat(path); err != nil {
			return a.fail(exitUsage, "audit verify: %v", err)
		}
	}
	rep, err := audit.VerifyFiles(files, seed)
	name := strings.Join(files, " ")
	var be *audit.BreakError
	switch {
	case errors.As(err, &be):
		seq := "unreadable seq"
		if be.Seq != 0 {
			seq = fmt.Sprintf("seq %d", be.Seq)
		}
		fmt.Fprintf(a.stderr, "attestctl: audit log %s is BROKEN at line %d (%s): %s\n", be.File, be.Line, seq, be.Reason)
		if line, ok := lineOf(be.File, be.Line); ok {
			fmt.Fprintf(a.stderr, "  line %d: %s\n", be.Line, line)
		}
		if rep.Records > 0 {
			fmt.Fprintf(a.stderr, "  the %d records before it verify (seq %d to %d)\n", rep.Records, rep.FirstSeq, rep.LastSeq)
		} else {
			fmt.Fprintf(a.stderr, "  no record before it verifies\n")
		}
		return exitFail
	case err != nil && strings.Contains(err.Error(), "does not continue"):
		fmt.Fprintf(a.stderr, "attestctl: %v\n", err)
		return exitFail
	case err != nil:
		return a.fail(exitUsage, "audit verify: %v", err)
	}
	if rep.Records == 0 {
		fmt.Fprintf(a.stdout, "audit log %s intact: 0 records\n", name)
		return exitOK
	}
	macs := ""
	if seed != nil {
		macs = fmt.Sprintf(", %d MACs checked with the seed", rep.MACs)
	}
	fmt.Fprintf(a.stdout, "audit log %s intact: %d records, seq %d to %d, last hash %s%s\n",
		name, rep.Records, rep.FirstSeq, rep.LastSeq, rep.LastHash, macs)
	return exitOK
}

// lineOf returns the start of line n (1-based) of the file, cleaned for
// display. It holds at most a few hundred bytes of any line.
func lineOf(path string, n int) (string, bool) {
	const show = 240
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	line, cur := []byte(nil), 1
	for {
		chunk, err := r.ReadSlice('\n')
		if cur == n && len(line) <= show {
			line = append(line, chunk[:min(len(chunk), show+1-len(line))]...)
		}
		switch {
		case err == nil:
			if cur == n {
				return display(line, show), true
			}
			cur++
		case errors.Is(err, bufio.ErrBufferFull):
		default: // EOF or a read error: a torn last line still shows
			return display(line, show), cur == n && len(line) > 0
		}
	}
}

func display(line []byte, show int) string {
	s := strings.TrimRight(string(line), "\n")
	if len(s) > show {
		s = s[:show] + "..."
	}
	return clean(s)
}
