package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// ChecksumInt64 is the hex SHA-256 of the values as little-endian int64:
// the checksum that ties feature and anchor files to the coordinates they
// were made from.
func ChecksumInt64(v []int64) string {
	h := sha256.New()
	var b [8]byte
	for _, x := range v {
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
