package builtin_test

import (
	"errors"
	"strings"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// tableHeader starts a plugin README's finding table.
const tableHeader = "| code | default severity | description | details |"

// readme is a plugin README split around its finding table.
type readme struct {
	before, after string
	rows          []tableRow
}

type tableRow struct{ code, severity, description, details string }

func (d *readme) row(code string) (tableRow, bool) {
	for _, r := range d.rows {
		if r.code == code {
			return r, true
		}
	}
	return tableRow{}, false
}

// parseREADME finds the finding table: the first table whose header starts
// "| code | default severity |". A table of the older three-column form
// (code | default severity | when) is read too, its third column as the
// details, so that -update can convert it.
func parseREADME(s string) (*readme, error) {
	lines := strings.SplitAfter(s, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "| code | default severity |") {
			start = i
			break
		}
	}
	if start < 0 || start+1 >= len(lines) {
		return nil, errors.New("no finding table (a table whose header is " + tableHeader + ")")
	}
	four := strings.TrimSpace(lines[start]) == tableHeader
	end := start + 2
	d := &readme{before: strings.Join(lines[:start], "")}
	for ; end < len(lines) && strings.HasPrefix(lines[end], "|"); end++ {
		cells := splitRow(lines[end])
		if len(cells) < 3 {
			return nil, errors.New("finding table row with fewer than 3 cells: " + lines[end])
		}
		r := tableRow{code: strings.Trim(cells[0], "`"), severity: cells[1]}
		if four && len(cells) >= 4 {
			r.description, r.details = cells[2], cells[3]
		} else {
			r.details = cells[2]
		}
		d.rows = append(d.rows, r)
	}
	if !four {
		// Not converted yet: every row differs from Describe.
		for i := range d.rows {
			d.rows[i].description = "\x00old table"
		}
	}
	d.after = strings.Join(lines[end:], "")
	return d, nil
}

// splitRow splits a Markdown table row on the '|' that are not escaped.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// render is the README with its finding table rebuilt from desc: one row
// per code, in the table's order and then Describe's; the details kept,
// a severity the old table qualified ("info; **critical** when ...")
// carried into them.
func (d *readme) render(desc sdk.Description) string {
	var b strings.Builder
	b.WriteString(d.before)
	b.WriteString(tableHeader + "\n| --- | --- | --- | --- |\n")
	byCode := map[string]sdk.FindingSpec{}
	for _, f := range desc.Findings {
		byCode[f.Code] = f
	}
	write := func(f sdk.FindingSpec, details string) {
		b.WriteString("| `" + f.Code + "` | " + f.DefaultSeverity.String() + " | " + escapeCell(f.Description) + " | " + details + " |\n")
		delete(byCode, f.Code)
	}
	for _, r := range d.rows {
		f, ok := byCode[r.code]
		if !ok {
			continue
		}
		details := r.details
		if r.severity != f.DefaultSeverity.String() {
			if q, ok := strings.CutPrefix(r.severity, f.DefaultSeverity.String()); ok {
				details = "Severity " + strings.TrimSpace(strings.TrimLeft(q, ";,")) + ". " + details
			}
		}
		write(f, details)
	}
	for _, f := range desc.Findings {
		if _, ok := byCode[f.Code]; ok {
			write(f, "")
		}
	}
	b.WriteString(d.after)
	return b.String()
}
