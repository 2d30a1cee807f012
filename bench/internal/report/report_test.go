package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestText(t *testing.T) {
	t.Parallel()
	tb := Table{Title: "T", Columns: []string{"a", "long column"}}
	tb.Add("xµz", "1")
	tb.Add("y")
	var b bytes.Buffer
	if err := tb.Text(&b); err != nil {
		t.Fatal(err)
	}
	want := "T\na    long column\n---  -----------\nxµz  1\ny    \n"
	if b.String() != want {
		t.Fatalf("Text =\n%q\nwant\n%q", b.String(), want)
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	tb := Table{Columns: []string{"a", "b"}}
	tb.Add("x|y", "1")
	var b bytes.Buffer
	if err := tb.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "| a | b |\n| --- | --- |\n| x\\|y | 1 |\n"
	if b.String() != want {
		t.Fatalf("Markdown =\n%q\nwant\n%q", b.String(), want)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "out.md")
	if err := WriteFile(p, filepath.Join(dir, "out.md.part"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, "", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "y" {
		t.Fatalf("content %q", b)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if err := WriteFile(p, filepath.Join(t.TempDir(), "x"), nil); err == nil {
		t.Fatal("a temporary file in another folder was accepted")
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), "", nil); err == nil {
		t.Fatal("writing into a missing folder did not fail")
	}
}
