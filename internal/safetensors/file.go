package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header length Parse and Read accept.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// File is a set of named tensors plus optional string metadata.
type File struct {
	Tensors  map[string]Tensor
	Metadata map[string]string // nil when the file has none
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return slices.Sorted(maps.Keys(f.Tensors)) }

// Read reads and parses the safetensors file at path. Errors name the path.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err) // *PathError names the path
	}
	f, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return f, nil
}

// Parse parses a safetensors file held in b, validating the header and the
// layout of the data buffer. The returned tensors' Data alias b (with their
// capacity clipped), so b must not be modified while they are in use.
func Parse(b []byte) (*File, error) {
	f, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

type entry struct {
	name       string
	begin, end int
	t          Tensor
}

// parse does the work of Parse; its errors lack the "safetensors: " prefix.
func parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("file too short: %d bytes, need at least 8 for the header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d exceeds the file size (%d bytes after the length)", n, len(b)-8)
	}
	header, buf := b[8:8+n], b[8+n:]
	if !utf8.Valid(header) {
		return nil, errors.New("header is not valid UTF-8")
	}
	f := &File{Tensors: map[string]Tensor{}}
	var entries []entry
	seen := map[string]bool{}
	err := decodeObject(header, "header", func(key string, val json.RawMessage) error {
		if seen[key] {
			if key == metadataKey {
				return errors.New("duplicate __metadata__ in header")
			}
			return fmt.Errorf("duplicate tensor name %q", key)
		}
		seen[key] = true
		if key == metadataKey {
			md, err := parseMetadata(val)
			f.Metadata = md
			return err
		}
		e, err := parseEntry(key, val, len(buf))
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return a.begin - b.begin
		}
		return a.end - b.end
	})
	pos := 0
	for _, e := range entries {
		switch {
		case e.begin < pos:
			return nil, fmt.Errorf("tensor %q data [%d, %d) overlaps data ending at %d", e.name, e.begin, e.end, pos)
		case e.begin > pos:
			return nil, fmt.Errorf("gap in data buffer: bytes [%d, %d) before tensor %q belong to no tensor", pos, e.begin, e.name)
		}
		pos = e.end
	}
	if pos != len(buf) {
		return nil, fmt.Errorf("gap in data buffer: bytes [%d, %d) at the end belong to no tensor", pos, len(buf))
	}
	for _, e := range entries {
		e.t.Data = buf[e.begin:e.end:e.end]
		f.Tensors[e.name] = e.t
	}
	return f, nil
}

// decodeObject walks the JSON object in data, calling fn for each member in
// order (duplicates included). what names the object in errors.
func decodeObject(data []byte, what string, fn func(key string, val json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return badJSON(what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s is not a JSON object", what)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badJSON(what, err)
		}
		key, ok := tok.(string)
		if !ok { // not reachable with encoding/json, kept as a guard
			return fmt.Errorf("invalid JSON in %s: object key is not a string", what)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return badJSON(what, err)
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return badJSON(what, err)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
		return fmt.Errorf("invalid JSON in %s: unexpected data after the object at offset %d", what, dec.InputOffset())
	}
	return nil
}

func badJSON(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("invalid JSON in %s: unexpected end", what)
	}
	return fmt.Errorf("invalid JSON in %s: %v", what, err)
}

func parseMetadata(val json.RawMessage) (map[string]string, error) {
	if string(val) == "null" {
		return nil, nil
	}
	md := map[string]string{}
	err := decodeObject(val, "__metadata__", func(key string, v json.RawMessage) error {
		if _, dup := md[key]; dup {
			return fmt.Errorf("duplicate __metadata__ key %q", key)
		}
		if len(v) == 0 || v[0] != '"' {
			return fmt.Errorf("__metadata__ value for key %q is not a string", key)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("__metadata__ value for key %q: %v", key, err)
		}
		md[key] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return md, nil
}

func parseEntry(name string, val json.RawMessage, bufLen int) (entry, error) {
	var dtypeRaw, shapeRaw, offRaw json.RawMessage
	err := decodeObject(val, fmt.Sprintf("tensor %q", name), func(key string, v json.RawMessage) error {
		var dst *json.RawMessage
		switch key {
		case "dtype":
			dst = &dtypeRaw
		case "shape":
			dst = &shapeRaw
		case "data_offsets":
			dst = &offRaw
		default:
			return fmt.Errorf("tensor %q: unknown field %q", name, key)
		}
		if *dst != nil {
			return fmt.Errorf("tensor %q: duplicate field %q", name, key)
		}
		*dst = v
		return nil
	})
	if err != nil {
		return entry{}, err
	}
	for _, m := range []struct {
		raw   json.RawMessage
		field string
	}{{dtypeRaw, "dtype"}, {shapeRaw, "shape"}, {offRaw, "data_offsets"}} {
		if m.raw == nil {
			return entry{}, fmt.Errorf("tensor %q: missing field %q", name, m.field)
		}
	}
	if dtypeRaw[0] != '"' {
		return entry{}, fmt.Errorf("tensor %q: dtype is not a string", name)
	}
	var dtype string
	if err := json.Unmarshal(dtypeRaw, &dtype); err != nil {
		return entry{}, fmt.Errorf("tensor %q: dtype: %v", name, err)
	}
	if DTypeSize(dtype) == 0 {
		return entry{}, fmt.Errorf("tensor %q: unknown dtype %q", name, dtype)
	}
	shape, err := parseInts(shapeRaw)
	if err != nil {
		return entry{}, fmt.Errorf("tensor %q: shape: %v", name, err)
	}
	nb, err := byteLen(dtype, shape)
	if err != nil {
		return entry{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	off, err := parseInts(offRaw)
	if err != nil {
		return entry{}, fmt.Errorf("tensor %q: data_offsets: %v", name, err)
	}
	if len(off) != 2 {
		return entry{}, fmt.Errorf("tensor %q: data_offsets has %d values, want 2", name, len(off))
	}
	begin, end := off[0], off[1]
	switch {
	case begin < 0 || end < 0:
		return entry{}, fmt.Errorf("tensor %q: negative data_offsets [%d, %d]", name, begin, end)
	case begin > end:
		return entry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin", name, begin, end)
	case end > bufLen:
		return entry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] exceed the data buffer of %d bytes", name, begin, end, bufLen)
	case end-begin != nb:
		return entry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] span %d bytes, but shape %v of %s needs %d", name, begin, end, end-begin, shape, dtype, nb)
	}
	return entry{name: name, begin: begin, end: end, t: Tensor{DType: dtype, Shape: shape}}, nil
}

// parseInts decodes a JSON array of integers (no fractions or exponents).
func parseInts(raw json.RawMessage) ([]int, error) {
	if raw[0] != '[' {
		return nil, errors.New("not a JSON array")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	out := make([]int, len(elems))
	for i, e := range elems {
		s := string(bytes.TrimSpace(e))
		v, err := strconv.ParseInt(s, 10, 0)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("value %s at index %d is out of range", s, i)
			}
			return nil, fmt.Errorf("value %.40s at index %d is not an integer", s, i)
		}
		out[i] = int(v)
	}
	return out, nil
}

// header validates f and returns the padded JSON header, the sorted names
// and the total data size. Errors are unprefixed.
func (f *File) header() ([]byte, []string, int, error) {
	if f == nil {
		return nil, nil, 0, errors.New("nil *File")
	}
	names := f.Names()
	h := []byte{'{'}
	if len(f.Metadata) > 0 {
		h = appendString(h, metadataKey)
		h = append(h, ":{"...)
		for i, k := range slices.Sorted(maps.Keys(f.Metadata)) {
			v := f.Metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, 0, fmt.Errorf("metadata key %q or its value is not valid UTF-8", k)
			}
			if i > 0 {
				h = append(h, ',')
			}
			h = appendString(h, k)
			h = append(h, ':')
			h = appendString(h, v)
		}
		h = append(h, '}')
	}
	total := 0
	for i, name := range names {
		t := f.Tensors[name]
		if name == metadataKey {
			return nil, nil, 0, fmt.Errorf("tensor name %q is reserved", name)
		}
		if !utf8.ValidString(name) {
			return nil, nil, 0, fmt.Errorf("tensor name %q is not valid UTF-8", name)
		}
		if _, err := t.check(); err != nil {
			return nil, nil, 0, fmt.Errorf("tensor %q: %v", name, err)
		}
		if len(t.Data) > math.MaxInt-total {
			return nil, nil, 0, errors.New("total data size overflows int")
		}
		if i > 0 || len(f.Metadata) > 0 {
			h = append(h, ',')
		}
		h = appendString(h, name)
		h = append(h, `:{"dtype":`...)
		h = appendString(h, t.DType)
		h = append(h, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				h = append(h, ',')
			}
			h = strconv.AppendInt(h, int64(d), 10)
		}
		h = append(h, `],"data_offsets":[`...)
		h = strconv.AppendInt(h, int64(total), 10)
		total += len(t.Data)
		h = append(h, ',')
		h = strconv.AppendInt(h, int64(total), 10)
		h = append(h, "]}"...)
	}
	h = append(h, '}')
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	if len(h) > MaxHeaderSize {
		return nil, nil, 0, fmt.Errorf("header of %d bytes exceeds the limit of %d bytes", len(h), MaxHeaderSize)
	}
	return h, names, total, nil
}

// appendString appends s as a JSON string (no HTML escaping).
func appendString(dst []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte{'\n'})...)
}

// Marshal encodes f: tensors sorted by name with contiguous offsets,
// "__metadata__" (if any, keys sorted) first, compact JSON padded with spaces
// to a multiple of 8 bytes. The output is deterministic.
func (f *File) Marshal() ([]byte, error) {
	h, names, total, err := f.header()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	out := make([]byte, 8, 8+len(h)+total)
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	for _, name := range names {
		out = append(out, f.Tensors[name].Data...)
	}
	return out, nil
}

// WriteTo writes the encoding of f (as Marshal) to w without building it in
// memory.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	h, names, _, err := f.header()
	if err != nil {
		return 0, fmt.Errorf("safetensors: %w", err)
	}
	n, err := f.writeTo(w, h, names)
	if err != nil {
		return n, fmt.Errorf("safetensors: %w", err)
	}
	return n, nil
}

func (f *File) writeTo(w io.Writer, h []byte, names []string) (int64, error) {
	var total int64
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(h)))
	for _, p := range [][]byte{lenb[:], h} {
		n, err := w.Write(p)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	for _, name := range names {
		n, err := w.Write(f.Tensors[name].Data)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
