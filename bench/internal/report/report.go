// Package report formats the benchmark's tables as aligned text for the
// terminal and as Markdown, and writes result files atomically.
package report

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Table is a titled grid of cells.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
}

// Add appends a row; missing cells are left empty.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

func (t *Table) cell(r []string, i int) string {
	if i < len(r) {
		return r[i]
	}
	return ""
}

// Text writes the table with aligned columns.
func (t *Table) Text(w io.Writer) error {
	width := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		width[i] = utf8.RuneCountInString(c)
	}
	for _, r := range t.Rows {
		for i := range t.Columns {
			width[i] = max(width[i], utf8.RuneCountInString(t.cell(r, i)))
		}
	}
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title + "\n")
	}
	line := func(cells func(i int) string) {
		for i := range t.Columns {
			s := cells(i)
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(s)
			if i < len(t.Columns)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(s)))
			}
		}
		b.WriteString("\n")
	}
	line(func(i int) string { return t.Columns[i] })
	line(func(i int) string { return strings.Repeat("-", width[i]) })
	for _, r := range t.Rows {
		line(func(i int) string { return t.cell(r, i) })
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Markdown writes the table as a GitHub-flavoured Markdown table, the
// title (if any) as a bold line above it.
func (t *Table) Markdown(w io.Writer) error {
	var b strings.Builder
	if t.Title != "" {
		b.WriteString("**" + t.Title + "**\n\n")
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, c := range t.Columns {
		b.WriteString(" " + esc(c) + " |")
	}
	b.WriteString("\n|")
	for range t.Columns {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("|")
		for i := range t.Columns {
			b.WriteString(" " + esc(t.cell(r, i)) + " |")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteFile writes data to path through a temporary file in the same
// folder (tmp, or path+".tmp" when tmp is ""), renamed into place, so that
// a reader never sees half a file.
func WriteFile(path, tmp string, data []byte) error {
	if tmp == "" {
		tmp = path + ".tmp"
	}
	if filepath.Dir(tmp) != filepath.Dir(path) {
		return fmt.Errorf("write %s: temporary file %s is in another folder", path, tmp)
	}
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
