package lint

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestArchitectureDiagram holds docs/architecture.md's import graph to the
// code: every package it draws imports exactly the project packages it
// lists. A line whose list ends in "..." names only part of them, and one
// whose package has a placeholder (<x>) is not checked.
func TestArchitectureDiagram(t *testing.T) {
	t.Parallel()
	drawn := diagram(t)
	if len(drawn) < 10 {
		t.Fatalf("docs/architecture.md: found %d packages in the import graph's text block; is the block still there?", len(drawn))
	}
	var pkgs []string
	for pkg := range drawn {
		pkgs = append(pkgs, "./"+pkg)
	}
	slices.Sort(pkgs)
	actual := projectImports(t, pkgs)
	for pkg, d := range drawn {
		got := actual[pkg]
		var missing, extra []string
		for _, imp := range got {
			if !slices.Contains(d.imports, imp) {
				missing = append(missing, imp)
			}
		}
		for _, imp := range d.imports {
			if !slices.Contains(got, imp) {
				extra = append(extra, imp)
			}
		}
		if len(extra) > 0 || (len(missing) > 0 && !d.partial) {
			t.Errorf("docs/architecture.md draws %s -> %v; it imports %v (not drawn: %v, drawn but not imported: %v)", pkg, d.imports, got, missing, extra)
		}
	}
}

type drawnPkg struct {
	imports []string
	partial bool // the list ends in "...": only some are drawn
}

// diagram reads the import graph's text block: "pkg -> a, b," lines and
// their indented continuations, parenthesised remarks dropped.
func diagram(t *testing.T) map[string]*drawnPkg {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "## Import graph")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Import graph" section`)
	}
	_, rest, _ = strings.Cut(rest, "```text\n")
	block, _, _ := strings.Cut(rest, "```")
	out := map[string]*drawnPkg{}
	var cur *drawnPkg
	for _, line := range strings.Split(block, "\n") {
		list := line
		if name, after, ok := strings.Cut(line, "->"); ok {
			name = strings.TrimSpace(name)
			cur = nil
			if strings.Contains(name, "<") {
				continue
			}
			cur = &drawnPkg{}
			out[name] = cur
			list = after
		} else if cur == nil {
			continue
		}
		if i := strings.IndexByte(list, '('); i >= 0 {
			list = list[:i]
		}
		for _, f := range strings.Split(list, ",") {
			switch f = strings.TrimSpace(f); {
			case f == "...":
				cur.partial = true
			case f != "":
				cur.imports = append(cur.imports, f)
			}
		}
	}
	return out
}

// projectImports is each package's direct imports within the module,
// relative to its root.
func projectImports(t *testing.T, pkgs []string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`}, pkgs...)
	cmd := execGo(ctx, args...)
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", pkgs, err)
	}
	res := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module+"/")
		res[pkg] = []string{}
		for _, imp := range fields[1:] {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				res[pkg] = append(res[pkg], rel)
			}
		}
	}
	return res
}
