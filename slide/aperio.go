package slide

import (
	"strconv"
	"strings"
)

// parseAperioDescription splits an Aperio ImageDescription
// ("Aperio Image Library vX\r\n46000x32914 ... |AppMag = 20|MPP = 0.4990|...")
// into its header line and key/value fields. It reports ok=false when the text
// is not an Aperio description. Keys keep their case; values are trimmed.
func parseAperioDescription(desc string) (header string, fields map[string]string, ok bool) {
	if !strings.HasPrefix(desc, "Aperio") {
		return "", nil, false
	}
	parts := strings.Split(desc, "|")
	header = strings.TrimSpace(parts[0])
	fields = make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		k, v, found := strings.Cut(p, "=")
		if !found {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if _, dup := fields[k]; !dup { // first wins, as in OpenSlide
			fields[k] = strings.TrimSpace(v)
		}
	}
	return header, fields, true
}

// positiveFloat parses s as a finite number > 0.
func positiveFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(v > 0) || v > 1e9 {
		return 0, false
	}
	return v, true
}
