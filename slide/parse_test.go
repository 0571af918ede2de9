package slide

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

// tinyTIFF builds a one-page little-endian TIFF with the given entries.
func tinyTIFF(w, h uint32, desc string, dataLen uint32) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("II")
	binary.Write(&b, le, uint16(42))
	binary.Write(&b, le, uint32(8))
	type ent struct {
		tag, typ uint16
		n, v     uint32
	}
	descOff := uint32(8 + 2 + 12*6 + 4)
	dataOff := descOff + uint32(len(desc)+1)
	ents := []ent{{256, 4, 1, w}, {257, 4, 1, h}, {259, 3, 1, 7}, {270, 2, uint32(len(desc) + 1), descOff}, {273, 4, 1, dataOff}, {279, 4, 1, dataLen}}
	binary.Write(&b, le, uint16(len(ents)))
	for _, e := range ents {
		binary.Write(&b, le, e.tag)
		binary.Write(&b, le, e.typ)
		binary.Write(&b, le, e.n)
		binary.Write(&b, le, e.v)
	}
	binary.Write(&b, le, uint32(0))
	b.WriteString(desc)
	b.WriteByte(0)
	b.Write(make([]byte, 16))
	return b.Bytes()
}

func TestParseTIFF(t *testing.T) {
	good := tinyTIFF(100, 50, "Aperio Image Library|MPP = 0.25", 16)
	cases := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"good", good, ""},
		{"not tiff", []byte("hello world, not a tiff"), "not a TIFF"},
		{"short", []byte("II"), "not a TIFF"},
		{"data beyond end", tinyTIFF(100, 50, "x", 1<<20), "truncated"},
		{"ifd beyond end", []byte("II*\x00\xff\xff\x00\x00"), "truncated"},
		{"loop", append([]byte("II*\x00\x08\x00\x00\x00"), loopIFD()...), "loops"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ti, err := parseTIFF(bytes.NewReader(c.data), int64(len(c.data)))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				p := ti.Pages[0]
				if p.Width != 100 || p.Height != 50 || p.Compression != compJPEG || !strings.HasPrefix(p.Description, "Aperio") || p.DataChunks != 1 {
					t.Errorf("page %+v", p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

// loopIFD is an IFD at offset 8 whose next pointer is itself.
func loopIFD() []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&b, le, uint16(2))
	for _, e := range [][3]uint32{{256, 4, 10}, {257, 4, 10}} {
		binary.Write(&b, le, uint16(e[0]))
		binary.Write(&b, le, uint16(e[1]))
		binary.Write(&b, le, uint32(1))
		binary.Write(&b, le, e[2])
	}
	binary.Write(&b, le, uint32(8))
	return b.Bytes()
}

func TestParseAperioDescription(t *testing.T) {
	cases := []struct {
		desc   string
		ok     bool
		mpp    string
		appMag string
	}{
		{"Aperio Image Library v11.2.1 \r\n46000x32914 [0,100 46000x32914] (256x256) JPEG/RGB Q=30|AppMag = 20|MPP = 0.4990|AppMag = 40", true, "0.4990", "20"},
		{"Aperio Image Library v10|", true, "", ""},
		{"Aperio|MPP=0.25|=x|novalue", true, "0.25", ""},
		{"Hamamatsu", false, "", ""},
		{"", false, "", ""},
	}
	for _, c := range cases {
		_, f, ok := parseAperioDescription(c.desc)
		if ok != c.ok || f["MPP"] != c.mpp || f["AppMag"] != c.appMag {
			t.Errorf("%q: ok=%v fields=%v", c.desc, ok, f)
		}
	}
}

func TestTIFFResolutionMPP(t *testing.T) {
	cases := []struct {
		res, unit string
		mpp       float64
		ok        bool
	}{
		{"20000", "centimeter", 0.5, true},
		{"50800", "inch", 0.5, true},
		{"72", "inch", 352.78, false}, // the writer default, not a measurement
		{"20000", "none", 0, false},
		{"0", "centimeter", 0, false},
		{"abc", "cm", 0, false},
	}
	for _, c := range cases {
		got, ok := tiffResolutionMPP(c.res, c.unit)
		if ok != c.ok || (ok && abs(got-c.mpp) > 1e-9) {
			t.Errorf("%s %s: %g %v", c.res, c.unit, got, ok)
		}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func FuzzParseTIFF(f *testing.F) {
	f.Add(tinyTIFF(100, 50, "Aperio|MPP = 0.5", 16))
	f.Add([]byte("MM\x00*\x00\x00\x00\x08"))
	f.Add([]byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"))
	if p, err := filepath.Glob(filepath.Join(testutil.SharedDataRoot(), "*", "*.svs")); err == nil && testutil.SharedDataRoot() != "" {
		for _, s := range p {
			if b, err := os.ReadFile(s); err == nil && len(b) > 4096 {
				f.Add(b[:4096]) // the header region of a real slide
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ti, err := parseTIFF(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, p := range ti.Pages {
			if p.Width <= 0 || p.Height <= 0 || p.DataEnd > int64(len(data)) {
				t.Fatalf("accepted page %+v of a %d-byte file", p, len(data))
			}
		}
	})
}

func FuzzAperioDescription(f *testing.F) {
	f.Add("Aperio Image Library v11.2.1 \r\n46000x32914|AppMag = 20|MPP = 0.4990")
	f.Add("Aperio||=|a=b=c|MPP = nan")
	f.Fuzz(func(t *testing.T, s string) {
		_, fields, ok := parseAperioDescription(s)
		if ok != strings.HasPrefix(s, "Aperio") {
			t.Fatalf("ok=%v for %q", ok, s)
		}
		for k, v := range fields {
			if k == "" || strings.Contains(k, "|") || strings.Contains(v, "|") || k != strings.TrimSpace(k) {
				t.Fatalf("bad field %q=%q", k, v)
			}
			if k == "MPP" {
				if m, ok := positiveFloat(v); ok && !(m > 0) {
					t.Fatalf("accepted mpp %q", v)
				}
			}
		}
	})
}
