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

// applyAperioFields takes the resolution and objective power from an Aperio
// description, where the metadata has none yet.
func applyAperioFields(meta *Metadata, f map[string]string) {
	if meta.MPPX == 0 {
		if v, ok := positiveFloat(f["MPP"]); ok {
			meta.MPPX, meta.MPPY, meta.MPPSource = v, v, "aperio.MPP"
		}
	}
	if v, ok := positiveFloat(f["AppMag"]); ok && meta.ObjectivePower == 0 {
		meta.ObjectivePower = v
	}
}
