package hashset

import (
	"context"
	"os/exec"
	"reflect"
	"testing"
)

const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestMixedSizes(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		n     int
		total int64
	}{{1, 10}, {7, 7}, {20, 1 << 20}, {2000, 1 << 30}} {
		sizes, err := MixedSizes(tc.n, tc.total, 1)
		if err != nil {
			t.Fatalf("Test %d: %v", i, err)
		}
		var sum, lo, hi int64 = 0, sizes[0], sizes[0]
		for _, s := range sizes {
			if s < 1 {
				t.Fatalf("Test %d: size %d", i, s)
			}
			sum += s
			lo, hi = min(lo, s), max(hi, s)
		}
		if len(sizes) != tc.n || sum != tc.total {
			t.Fatalf("Test %d: %d sizes adding up to %d, want %d and %d", i, len(sizes), sum, tc.n, tc.total)
		}
		if tc.n >= 2000 && hi < 50*lo {
			t.Fatalf("Test %d: sizes %d..%d are not mixed", i, lo, hi)
		}
		again, _ := MixedSizes(tc.n, tc.total, 1)
		if !reflect.DeepEqual(sizes, again) {
			t.Fatalf("Test %d: same seed, different sizes", i)
		}
	}
	for _, bad := range [][2]int64{{0, 10}, {5, 4}} {
		if _, err := MixedSizes(int(bad[0]), bad[1], 1); err == nil {
			t.Errorf("MixedSizes(%d, %d) did not fail", bad[0], bad[1])
		}
	}
}

func TestContendersAgree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if free, err := FreeBytes(dir); err != nil || free <= 0 {
		t.Fatalf("FreeBytes = %d, %v", free, err)
	}
	// 0 bytes, a small file, and one above the plugin's read-ahead threshold.
	set, err := Create(dir, "t", []int64{0, 1000, 5<<20 + 3})
	if err != nil {
		t.Fatal(err)
	}
	if set.Bytes() != 5<<20+1003 || len(set.Paths()) != 3 {
		t.Fatalf("set = %+v", set)
	}
	ctx := context.Background()
	if err := Warm(ctx, set); err != nil {
		t.Fatal(err)
	}
	want, err := Plugin(2).Hash(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	if want[set.Files[0].Path] != empty {
		t.Fatalf("empty file digest %q", want[set.Files[0].Path])
	}
	if want[set.Files[1].Path] == want[set.Files[2].Path] {
		t.Fatal("two different files hash alike")
	}
	contenders := []Contender{Plugin(1)}
	for _, tool := range []string{"openssl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not installed: its contender is not checked", tool)
		}
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		contenders = append(contenders, OpenSSL(1, 0), OpenSSL(2, 1))
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		contenders = append(contenders, Sha256sum())
	}
	for _, c := range contenders {
		got, err := c.Hash(ctx, set)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if err := Check(set, want, got); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	bad := Digests{set.Files[0].Path: empty, set.Files[1].Path: empty, set.Files[2].Path: empty}
	if err := Check(set, want, bad); err == nil {
		t.Fatal("Check accepted wrong digests")
	}
	if err := Check(set, want, Digests{}); err == nil {
		t.Fatal("Check accepted missing digests")
	}
	if _, err := Create(dir, "t", []int64{1}); err == nil {
		t.Fatal("Create overwrote an existing file")
	}
}

func TestParseOpenSSL(t *testing.T) {
	t.Parallel()
	d, err := ParseOpenSSL([]byte("SHA2-256(/a (1).bin)= " + empty + "\nSHA256(/b)= " + empty + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Digests{"/a (1).bin": empty, "/b": empty}) {
		t.Fatalf("ParseOpenSSL = %v", d)
	}
	for i, bad := range []string{"SHA2-256 /a " + empty, "SHA2-256(/a)= xyz", "(/a)= " + empty[:63]} {
		if _, err := ParseOpenSSL([]byte(bad)); err == nil {
			t.Errorf("Test %d: ParseOpenSSL(%q) did not fail", i, bad)
		}
	}
}

func TestParseSha256sum(t *testing.T) {
	t.Parallel()
	d, err := ParseSha256sum([]byte(empty + "  /a b\n" + empty + " */c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Digests{"/a b": empty, "/c": empty}) {
		t.Fatalf("ParseSha256sum = %v", d)
	}
	for i, bad := range []string{empty + "/a", "\\" + empty + "  /a\\nb", empty[:60] + "    /a", empty + "\t/a"} {
		if _, err := ParseSha256sum([]byte(bad)); err == nil {
			t.Errorf("Test %d: ParseSha256sum(%q) did not fail", i, bad)
		}
	}
}

func FuzzParseOpenSSL(f *testing.F) {
	f.Add([]byte("SHA2-256(/x)= " + empty + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseOpenSSL(b)
		for _, sum := range d {
			if err == nil && !isHex64(sum) {
				t.Fatalf("ParseOpenSSL(%q) gave digest %q", b, sum)
			}
		}
	})
}

func FuzzParseSha256sum(f *testing.F) {
	f.Add([]byte(empty + "  /x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseSha256sum(b)
		for _, sum := range d {
			if err == nil && !isHex64(sum) {
				t.Fatalf("ParseSha256sum(%q) gave digest %q", b, sum)
			}
		}
	})
}
