package main

import (
	"bytes"
	"strings"
	"testing"
)

// The full run is exercised by bench/internal/suite's smoke test; these
// check the command's own argument and environment handling.
func TestRunRefusesBadInput(t *testing.T) {
	for i, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{args: []string{"extra"}, code: 2, want: `unexpected argument "extra"`},
		{args: []string{"-nope"}, code: 2, want: "flag provided but not defined"},
		{env: map[string]string{"BENCH_IDLE": "soon"}, code: 2, want: `BENCH_IDLE="soon"`},
		{env: map[string]string{"BENCH_IDLE": "-1s"}, code: 2, want: "positive duration"},
		{args: []string{"-serve-fixed", "/nonexistent/routes.json"}, code: 1, want: "bare server: read routes"},
		{args: []string{"-bin", "/nonexistent"}, env: map[string]string{"BENCH_QUICK": "1"}, code: 1, want: "run make build"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("Test %d: run(%q) = %d, stderr %q; want %d and %q", i, tc.args, code, stderr.String(), tc.code, tc.want)
		}
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}
