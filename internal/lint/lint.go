// Package lint holds the code rules that `make test` and `make vet` enforce
// without any tool beyond the Go toolchain: functions in core/, policy/ and
// sdk/ at most MaxFuncLines long (LongFuncs), and errors compared with
// errors.Is and errors.As (ErrorUses). golangci-lint, run by `make lint`,
// checks more; see .golangci.yml.
package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// MaxFuncLines is the longest a function in core/, policy/ or sdk/ may be,
// counted from the line of `func` to the line of its closing brace.
const MaxFuncLines = 80

// Bounded are the folders, relative to the module root, whose production
// code is held to MaxFuncLines. Tests and generated files are not.
var Bounded = []string{"core", "policy", "sdk"}

// Func is a function longer than the bound.
type Func struct {
	Pos   string // file:line of `func`, relative to the root
	Name  string // Name, or (Recv).Name for a method
	Lines int
}

func (f Func) String() string { return fmt.Sprintf("%s: %s is %d lines", f.Pos, f.Name, f.Lines) }

// LongFuncs returns the functions longer than max lines in the non-test,
// non-generated Go files under root/dir for each dir, longest first.
func LongFuncs(root string, dirs []string, max int) ([]Func, error) {
	var out []Func
	fset := token.NewFileSet()
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != filepath.Join(root, dir) && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			found, err := longFuncsIn(fset, root, path, max)
			if err != nil {
				return err
			}
			out = append(out, found...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("long functions under %s: %w", dir, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Lines > out[j].Lines })
	return out, nil
}

func longFuncsIn(fset *token.FileSet, root, path string, max int) ([]Func, error) {
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		rel = path
	}
	var out []Func
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
		if n := end - start + 1; n > max {
			out = append(out, Func{Pos: fmt.Sprintf("%s:%d", filepath.ToSlash(rel), start), Name: funcName(fd), Lines: n})
		}
	}
	return out, nil
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	return "(" + typeName(fd.Recv.List[0].Type) + ")." + fd.Name.Name
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return "*" + typeName(t.X)
	case *ast.Ident:
		return t.Name
	case *ast.IndexExpr: // a generic receiver, T[K]
		return typeName(t.X)
	case *ast.IndexListExpr: // T[K, V]
		return typeName(t.X)
	}
	return "?"
}
