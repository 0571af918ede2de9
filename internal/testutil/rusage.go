package testutil

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user + system, all threads) the process has
// used so far; 0 when the system does not say.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSSMB is the process's peak resident memory in MiB (Linux reports
// KiB); 0 when the system does not say. Run one benchmark per process for
// it to be that benchmark's.
func PeakRSSMB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
