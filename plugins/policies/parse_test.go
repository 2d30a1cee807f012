package policies

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
)

// The vectors were computed with an independent implementation (Python's
// hashlib and struct.pack('>Q', n)); README.md shows it.
func TestDigestVectors(t *testing.T) {
	t.Parallel()
	policy := File{"/etc/secure-ai/policy/policy.yaml", []byte("version: 1\n")}
	agent := File{"/etc/secure-ai/policy/agent.yaml", []byte("agents: []\n")}
	for i, tc := range []struct {
		files []File
		want  string
	}{
		{[]File{policy, agent}, "7499256857991d6dcee15e2dd1ea63c03d4fca71b270292ebc6680b494e8cc1d"},
		{[]File{agent, policy}, "cb778129294bfb1b0dce6e43ed353ba54be05c7bcc31819a3366319d0c8d5e84"},
		{[]File{{"/a", []byte("ab")}, {"/b", []byte("c")}}, "c5a570f9b8e8276cee7eb4a4a2d514289cf2bf1b6be281912f76c1118c1872d8"},
		{[]File{{"/a", []byte("a")}, {"/b", []byte("bc")}}, "65ded5a6d5679ab90594ee82fe005270b3b24549ae8d93b7262e4414f1004cfd"},
		{[]File{{"/etc/secure-ai/policy/policy.yaml", nil}}, "06ac104578326fa6663b0d50c1caec0ecdfc9e8f2ddd87b3d9fd323f9f3d1c9c"},
	} {
		if got := DigestFiles(tc.files); got != tc.want {
			t.Errorf("Test %d: DigestFiles = %s, want %s", i, got, tc.want)
		}
	}
}

// TestDigestSensitivity: order, paths and the split of bytes between files
// all change the digest, including the cases a naive concatenation misses.
func TestDigestSensitivity(t *testing.T) {
	t.Parallel()
	base := []File{{"/p/a.yaml", []byte("x: 1\n")}, {"/p/b.yaml", []byte("y: 2\n")}}
	variants := map[string][]File{
		"swapped":               {base[1], base[0]},
		"byte moved forward":    {{"/p/a.yaml", []byte("x: 1\ny")}, {"/p/b.yaml", []byte(": 2\n")}},
		"byte moved back":       {{"/p/a.yaml", []byte("x: 1")}, {"/p/b.yaml", []byte("\ny: 2\n")}},
		"renamed":               {{"/p/c.yaml", []byte("x: 1\n")}, base[1]},
		"path/content boundary": {{"/p/a.yamlx", []byte(": 1\n")}, base[1]},
		"one file":              {{"/p/a.yaml", []byte("x: 1\ny: 2\n")}},
		"extra empty file":      {base[0], base[1], {"/p/c.yaml", nil}},
	}
	want := DigestFiles(base)
	seen := map[string]string{want: "base"}
	for name, files := range variants {
		got := DigestFiles(files)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s has the same digest as %s", name, prev)
		}
		seen[got] = name
	}
}

// TestDigestEncoding spells out the construction byte by byte.
func TestDigestEncoding(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	for _, f := range []File{{"/x", []byte("hello")}, {"/yy", []byte("")}} {
		binary.Write(&buf, binary.BigEndian, uint64(len(f.Path)))
		buf.WriteString(f.Path)
		binary.Write(&buf, binary.BigEndian, uint64(len(f.Content)))
		buf.Write(f.Content)
	}
	want := sha256.Sum256(buf.Bytes())
	if got := DigestFiles([]File{{"/x", []byte("hello")}, {"/yy", nil}}); got != hex.EncodeToString(want[:]) {
		t.Fatalf("DigestFiles = %s, want %x", got, want)
	}
}

func TestPolicyDigestHoldsSizes(t *testing.T) {
	t.Parallel()
	d := NewPolicyDigest()
	if err := d.BeginFile("/a", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("abcd")); !errors.Is(err, ErrContentLength) {
		t.Fatalf("overlong write = %v", err)
	}
	if _, err := d.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sum(); !errors.Is(err, ErrContentLength) {
		t.Fatalf("Sum with a short file = %v", err)
	}
	if err := d.BeginFile("/b", 0); !errors.Is(err, ErrContentLength) {
		t.Fatalf("BeginFile after a short file = %v", err)
	}
	if _, err := d.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := d.BeginFile("/b", -1); err == nil {
		t.Fatal("negative size accepted")
	}
	sum, err := d.Sum()
	if err != nil || sum != DigestFiles([]File{{"/a", []byte("abc")}}) {
		t.Fatalf("Sum = %s, %v", sum, err)
	}
}

// FuzzPolicyDigest: streaming in arbitrary chunks equals the one-shot
// digest, and moving the split point between two files changes it.
func FuzzPolicyDigest(f *testing.F) {
	f.Fuzz(func(t *testing.T, p1, p2 string, content []byte, split, chunk uint8) {
		if len(content) == 0 {
			return
		}
		s := int(split) % (len(content) + 1)
		files := []File{{p1, content[:s]}, {p2, content[s:]}}
		want := DigestFiles(files)

		d := NewPolicyDigest()
		step := int(chunk)%7 + 1
		for _, file := range files {
			if err := d.BeginFile(file.Path, int64(len(file.Content))); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(file.Content); i += step {
				end := min(i+step, len(file.Content))
				if _, err := d.Write(file.Content[i:end]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got, err := d.Sum(); err != nil || got != want {
			t.Fatalf("streamed %s, %v; one-shot %s", got, err, want)
		}
		other := (s + 1) % (len(content) + 1)
		if DigestFiles([]File{{p1, content[:other]}, {p2, content[other:]}}) == want {
			t.Fatalf("moving the split from %d to %d did not change the digest", s, other)
		}
	})
}
