package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
)

// ErrorUse is an error compared with == or != or asserted to a type where
// errors.Is or errors.As would also see a wrapped one.
type ErrorUse struct {
	Pos  string // file:line, relative to the root
	What string
}

func (u ErrorUse) String() string { return u.Pos + ": " + u.What }

// ErrorUses returns, for the Go files under root (tests included, generated
// files and testdata left out), every comparison with a sentinel error
// (a name starting with Err or err, or io.EOF) and every type assertion or
// type switch on a value named err or ending in Err, outside an error's own
// Is method. A line that carries
// `//nolint:errorlint` with a reason is passed over. It needs no type
// information, so it runs in `go test`; golangci-lint's errorlint (`make
// lint`) checks the same with types.
func ErrorUses(root string) ([]ErrorUse, error) {
	var out []ErrorUse
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		found, err := errorUsesIn(fset, root, path)
		out = append(out, found...)
		return err
	})
	return out, err
}

func errorUsesIn(fset *token.FileSet, root, path string) ([]ErrorUse, error) {
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	allowed := map[int]bool{}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.Contains(c.Text, "nolint:errorlint") {
				allowed[fset.Position(c.Pos()).Line] = true
			}
		}
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		rel = path
	}
	var out []ErrorUse
	report := func(n ast.Node, format string, args ...any) {
		line := fset.Position(n.Pos()).Line
		if !allowed[line] {
			out = append(out, ErrorUse{Pos: fmt.Sprintf("%s:%d", filepath.ToSlash(rel), line), What: fmt.Sprintf(format, args...)})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			// An error's own Is method compares its target: that is what
			// errors.Is calls.
			return !(n.Recv != nil && n.Name.Name == "Is")
		case *ast.BinaryExpr:
			if n.Op != token.EQL && n.Op != token.NEQ {
				return true
			}
			for _, side := range []ast.Expr{n.X, n.Y} {
				if isSentinel(side) {
					report(n, "%s compared with %s: use errors.Is", exprString(side), n.Op)
				}
			}
		case *ast.TypeAssertExpr:
			if n.Type != nil && isErrorName(n.X) { // n.Type nil: a type switch, below
				report(n, "type assertion on %s: use errors.As", exprString(n.X))
			}
		case *ast.TypeSwitchStmt:
			if x := switchedOn(n); x != nil && isErrorName(x) {
				report(n, "type switch on %s: use errors.As", exprString(x))
			}
		}
		return true
	})
	return out, nil
}

// isSentinel reports whether e names a sentinel error: ErrX, errX, pkg.ErrX
// or io.EOF.
func isSentinel(e ast.Expr) bool {
	name := ""
	switch e := e.(type) {
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		if pkg, ok := e.X.(*ast.Ident); ok && pkg.Name == "io" && e.Sel.Name == "EOF" {
			return true
		}
		name = e.Sel.Name
	default:
		return false
	}
	for _, prefix := range []string{"Err", "err"} {
		if rest, ok := strings.CutPrefix(name, prefix); ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return true
		}
	}
	return false
}

// isErrorName reports whether e is a value that by its name is an error:
// err, an identifier or field ending in Err, or one named ...err.
func isErrorName(e ast.Expr) bool {
	name := ""
	switch e := e.(type) {
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		name = e.Sel.Name
	default:
		return false
	}
	return name == "err" || strings.HasSuffix(name, "Err") || strings.HasSuffix(name, "err") && !strings.HasSuffix(name, "stderr")
}

func switchedOn(n *ast.TypeSwitchStmt) ast.Expr {
	var x ast.Expr
	switch a := n.Assign.(type) {
	case *ast.AssignStmt:
		if len(a.Rhs) == 1 {
			x = a.Rhs[0]
		}
	case *ast.ExprStmt:
		x = a.X
	}
	if ta, ok := x.(*ast.TypeAssertExpr); ok {
		return ta.X
	}
	return nil
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return "an expression"
}
