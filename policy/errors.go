package policy

import (
	"errors"
	"fmt"
)

// Error is one problem with a policy, named by its full dotted key
// ("plugins.kernel.timeout", "policy_files[1]"); Key is "" for the whole
// document. Line is the line in the YAML file, 0 when unknown.
type Error struct {
	Key  string
	Msg  string
	Line int
}

func (e *Error) Error() string {
	s := "policy: "
	if e.Key != "" {
		s += e.Key + ": "
	}
	s += e.Msg
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// Problems returns every *Error in err (which Parse, Load, Validate and
// CheckFiles return joined), in order.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if pe, ok := e.(*Error); ok { //nolint:errorlint // each level of the tree is looked at in turn
			out = append(out, pe)
			return
		}
		switch u := e.(type) { //nolint:errorlint // walks the joined and wrapped errors one level at a time
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// errs collects problems.
type errs struct {
	list  []error
	lines map[string]int
}

func (e *errs) add(key string, line int, format string, args ...any) {
	if line == 0 && e.lines != nil {
		line = lineOf(e.lines, key)
	}
	e.list = append(e.list, &Error{Key: key, Msg: fmt.Sprintf(format, args...), Line: line})
}

func (e *errs) err() error { return errors.Join(e.list...) }
