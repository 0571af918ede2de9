package cases

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, every problem is one line with a sane line
// number, and a file without problems survives Write and Read unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("case_id,he_slide,ihc_slide,label\nc1,h1,i1,0\n\"c,2\",h2,,3+\n"))
	f.Add([]byte("label,case_id,he_slide,ihc_slide,split,fold\n2,a,h,i,train,0\n0,b,h2,,test,\n1,c,h3,,train,1\n"))
	f.Add([]byte("\ufeff# c\ncase_id,he_slide,ihc_slide,label\n\"#x\",\"a\"\"b\",,2\n"))
	f.Add([]byte("case_id,he_slide,ihc_slide,label\n\"a,h,i,0\nb,h\"2,,1\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, ps := Parse(bytes.NewReader(data), "f.csv")
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, p := range ps {
			if s := p.String(); strings.ContainsAny(s, "\r\n") || p.Line < 0 || p.Line > lines {
				t.Fatalf("problem %q (line %d of %d)", s, p.Line, lines)
			}
		}
		if len(ps) > 0 {
			if cs != nil {
				t.Fatal("cases with problems")
			}
			return
		}
		if len(cs) == 0 {
			t.Fatal("no cases and no problem")
		}
		p := filepath.Join(dir, "cases.csv")
		if err := Write(p, cs); err != nil {
			t.Fatalf("write of parsed cases: %v", err)
		}
		back, err := Read(p)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		for i := range cs {
			cs[i].Line = back[i].Line
		}
		if !slices.Equal(back, cs) {
			t.Fatalf("round trip:\n%+v\n%+v", back, cs)
		}
	})
}
