//go:build !unix

package bench

import "time"

// cpuTime is 0 where there is no getrusage: the cpu-ns/op column then reads
// 0, and the benchmarks still build and vet on every GOOS.
func cpuTime() time.Duration { return 0 }
