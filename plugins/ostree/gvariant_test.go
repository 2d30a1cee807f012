package ostree

import (
	"bytes"
	"strings"
	"testing"
)

// testdata/ostree-booted.record and testdata/layered.commit were written by
// Debian's ostree 2022.7 (see testdata/README.md).
const (
	layeredCommitParent = "88ef575778b5d2cfbb4a92076f619531a2e2083870f29ce5e8dba7bb68bbc913"
	fixtureDigest       = "sha256:ca99893c80a7b84dd84d4143bd27538207c2f38ab6647a58d9c8caa251f9a087"
)

func TestParseVarDictRecord(t *testing.T) {
	t.Parallel()
	d, err := ParseVarDict(readFixture(t, "ostree-booted.record"))
	if err != nil {
		t.Fatal(err)
	}
	dev, ino, err := d["backing-root-device-inode"].Uint64Pair()
	if err != nil || dev != 2049 || ino != 1234567 {
		t.Fatalf("backing-root-device-inode = %d %d, %v", dev, ino, err)
	}
	for _, k := range []string{"root.transient", "root.transient-ro"} {
		if b, err := d[k].Bool(); err != nil || b {
			t.Errorf("%s = %v, %v", k, b, err)
		}
	}
	if _, err := d["root.transient"].Str(); err == nil {
		t.Error("a boolean read as a string")
	}
	if empty, err := ParseVarDict(nil); err != nil || len(empty) != 0 {
		t.Errorf("empty record = %v, %v", empty, err)
	}
}

func TestParseCommit(t *testing.T) {
	t.Parallel()
	c, err := ParseCommit(readFixture(t, "layered.commit"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.MetaString("version")
	if err != nil || v != "41.1" || c.Parent != layeredCommitParent {
		t.Fatalf("version %q parent %q, %v", v, c.Parent, err)
	}
	if d, err := c.MetaString("ostree.manifest-digest"); err != nil || d != fixtureDigest {
		t.Fatalf("manifest digest %q, %v", d, err)
	}
	if d, err := c.MetaString("absent"); err != nil || d != "" {
		t.Fatalf("absent key = %q, %v", d, err)
	}
}

func TestParseVarDictRefuses(t *testing.T) {
	t.Parallel()
	rec := readFixture(t, "ostree-booted.record")
	for i, tc := range []struct {
		data []byte
		want string
	}{
		{[]byte{0x01}, "framing"},
		{[]byte("garbage\x07"), "a{sv}"},
		{rec[:len(rec)-1], "a{sv}"},
		{append(bytes.Clone(rec[:len(rec)-1]), 0xff), "beyond"},
	} {
		if _, err := ParseVarDict(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: ParseVarDict(%q) = %v, want an error containing %q", i, tc.data, err, tc.want)
		}
	}
	if _, err := ParseCommit([]byte("short")); err == nil {
		t.Error("a 5-byte commit was accepted")
	}
}

func TestComposefsArg(t *testing.T) {
	t.Parallel()
	d := strings.Repeat("ab", 32)
	for i, tc := range []struct {
		cmdline, want, err string
	}{
		{"quiet root=/dev/vda", "", ""},
		{"composefs=" + d + " quiet", d, ""},
		{"composefs=sha256:" + strings.ToUpper(d), d, ""},
		{"composefs=" + d + " composefs=" + d, d, ""},
		{"composefs=" + d + " composefs=" + strings.Repeat("cd", 32), "", "ambiguous"},
		{"composefs=yes", "", "not a SHA-256 digest"},
	} {
		got, err := ComposefsArg(tc.cmdline)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Test %d: ComposefsArg(%q) = %q, %v; want %q, %q", i, tc.cmdline, got, err, tc.want, tc.err)
		}
	}
}

func TestParseBootEntry(t *testing.T) {
	t.Parallel()
	e, err := ParseBootEntry([]byte("title testos 2.0 (ostree:0)\nversion 2\noptions ostree=/ostree/boot.0/testos/ff6d/0\nlinux /ostree/testos-ff6d/vmlinuz-6.1.0\n"))
	if err != nil || e.Version != 2 || e.Options != "ostree=/ostree/boot.0/testos/ff6d/0" {
		t.Fatalf("entry %+v, %v", e, err)
	}
	for _, bad := range []string{"version 2\n", "options x\n", "version two\noptions x\n", "version 02\noptions x\n", "version -1\noptions x\n"} {
		if _, err := ParseBootEntry([]byte(bad)); err == nil {
			t.Errorf("ParseBootEntry(%q) accepted", bad)
		}
	}
}

func TestReferenceOf(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("1", 64)
	base := strings.Repeat("2", 64)
	for i, tc := range []struct {
		d    Deployment
		want Reference
	}{
		{Deployment{Checksum: sum, Version: "1", Unlocked: "none"}, Reference{Base: sum, Version: "1", Packages: []string{}}},
		{Deployment{Checksum: sum, BaseChecksum: base, Packages: []string{"vim", "htop", "vim"}, RequestedLocalPackages: []string{"a-1-1.x86_64"}},
			Reference{Base: base, Packages: []string{"a-1-1.x86_64", "htop", "vim"}}},
		{Deployment{Checksum: sum, ContainerImageReference: "ostree-image-signed:docker://q/x", ContainerImageReferenceDigest: fixtureDigest},
			Reference{Base: fixtureDigest, Packages: []string{}}},
		{Deployment{Checksum: sum, ContainerImageReference: "ostree-image-signed:docker://q/x"}, Reference{Base: sum, Packages: []string{}}},
		{Deployment{Checksum: sum, Unlocked: "transient", LiveInProgress: base}, Reference{Base: sum, Packages: []string{}, Unlocked: "transient", LiveReplaced: base}},
	} {
		got := ReferenceOf(&tc.d)
		if !equalRef(got, tc.want) {
			t.Errorf("Test %d: ReferenceOf = %+v, want %+v", i, got, tc.want)
		}
	}
}

func equalRef(a, b Reference) bool {
	return a.Base == b.Base && a.Version == b.Version && a.Composefs == b.Composefs && a.Unlocked == b.Unlocked &&
		a.LiveReplaced == b.LiveReplaced && strings.Join(a.Packages, "\x00") == strings.Join(b.Packages, "\x00") && a.Packages != nil
}

// FuzzParseVarDict: never panics; an accepted dictionary's values read
// back within bounds.
func FuzzParseVarDict(f *testing.F) {
	f.Add(readFixture(f, "ostree-booted.record"))
	f.Add([]byte{})
	f.Add(readFixture(f, "layered.commit")[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseVarDict(data)
		if err != nil {
			return
		}
		for k, v := range d {
			if strings.ContainsRune(k, 0) || len(v.Data) > len(data) {
				t.Fatalf("entry %q = %+v out of bounds", k, v)
			}
			_, _ = v.Bool()
			_, _ = v.Str()
			_, _, _ = v.Uint64Pair()
		}
	})
}

// FuzzParseCommit: never panics; a parent is a checksum.
func FuzzParseCommit(f *testing.F) {
	f.Add(readFixture(f, "layered.commit"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCommit(data)
		if err != nil {
			return
		}
		if c.Parent != "" && !ValidChecksum(c.Parent) {
			t.Fatalf("parent %q", c.Parent)
		}
		_, _ = c.MetaString("version")
	})
}

// FuzzComposefsArg: an accepted digest is 64 lowercase hex digits.
func FuzzComposefsArg(f *testing.F) {
	f.Add("quiet composefs=" + strings.Repeat("ab", 32))
	f.Add("composefs=sha256:" + strings.Repeat("AB", 32) + " composefs=x")
	f.Fuzz(func(t *testing.T, cmdline string) {
		d, err := ComposefsArg(cmdline)
		if err == nil && d != "" && !ValidChecksum(d) {
			t.Fatalf("accepted %q", d)
		}
	})
}

// FuzzParseBootEntry: never panics; an accepted entry has a version.
func FuzzParseBootEntry(f *testing.F) {
	f.Add([]byte("title testos 2.0 (ostree:0)\nversion 2\noptions ostree=/ostree/boot.0/testos/ff6d/0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseBootEntry(data)
		if err == nil && e.Version < 0 {
			t.Fatalf("version %d", e.Version)
		}
	})
}
