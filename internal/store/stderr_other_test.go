//go:build !linux

package store

import "testing"

// captureStderr runs fn; capturing file descriptor 2 is only done on Linux.
func captureStderr(t *testing.T, fn func()) string {
	fn()
	return ""
}
