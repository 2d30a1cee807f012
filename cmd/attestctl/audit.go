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
	fs := a.flagSet("audit", "verify FILE",
		"verify FILE checks the hash chain of an audit log (JSON Lines): every record's\n"+
			"hash, its seq and its link to the line before. It prints the number of records\n"+
			"and the last seq, or the first broken record (line, seq, why) and exits 1.\n"+
			"Exit 2 when the file cannot be read.")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return a.usageError(fs, "audit needs a subcommand: verify FILE")
	}
	if pos[0] != "verify" {
		return a.usageError(fs, "unknown audit subcommand %q (want verify)", pos[0])
	}
	if len(pos) != 2 {
		return a.usageError(fs, "audit verify takes exactly one FILE")
	}
	path := pos[1]
	if _, err := os.Stat(path); err != nil {
		return a.fail(exitUsage, "audit verify: %v", err)
	}
	rep, err := audit.VerifyFile(path)
	var be *audit.BreakError
	switch {
	case errors.As(err, &be):
		seq := "unreadable seq"
		if be.Seq != 0 {
			seq = fmt.Sprintf("seq %d", be.Seq)
		}
		fmt.Fprintf(a.stderr, "attestctl: audit log %s is BROKEN at line %d (%s): %s\n", path, be.Line, seq, be.Reason)
		if line, ok := lineOf(path, be.Line); ok {
			fmt.Fprintf(a.stderr, "  line %d: %s\n", be.Line, line)
		}
		if rep.Records > 0 {
			fmt.Fprintf(a.stderr, "  the %d records before it verify (seq %d to %d)\n", rep.Records, rep.FirstSeq, rep.LastSeq)
		} else {
			fmt.Fprintf(a.stderr, "  no record before it verifies\n")
		}
		return exitFail
	case err != nil:
		return a.fail(exitUsage, "audit verify: %v", err)
	}
	if rep.Records == 0 {
		fmt.Fprintf(a.stdout, "audit log %s intact: 0 records\n", path)
		return exitOK
	}
	fmt.Fprintf(a.stdout, "audit log %s intact: %d records, seq %d to %d, last hash %s\n",
		path, rep.Records, rep.FirstSeq, rep.LastSeq, rep.LastHash)
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
