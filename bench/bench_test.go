package bench

import "testing"

// benchSerial measures one run of each case, b.N times. The operation is a
// Flaky reset before each run, the same for every library.
func benchSerial(b *testing.B, cases []Case, fails int) {
	for _, c := range cases {
		b.Run(c.Lib, func(b *testing.B) {
			f := &Flaky{Fails: fails}
			run := c.Build(f.Call)
			b.ReportAllocs()
			for b.Loop() {
				f.Reset()
				_ = run()
			}
		})
	}
}

// A failed run is not checked inside the loops: TestScenarios checks what
// each run returns, and a check here would cost every library the same.

func BenchmarkSuccess(b *testing.B)              { benchSerial(b, Success, 0) }
func BenchmarkFailTwiceThenSucceed(b *testing.B) { benchSerial(b, FailTwiceThenSucceed, 2) }
func BenchmarkBreakerClosed(b *testing.B)        { benchSerial(b, BreakerClosed, 0) }

// succeed is the operation of the parallel benchmark: it keeps no state, so
// it is safe for concurrent use and costs the same for every library.
func succeed() error { return nil }

func BenchmarkBreakerClosedParallel(b *testing.B) {
	for _, c := range BreakerClosed {
		b.Run(c.Lib, func(b *testing.B) {
			run := c.Build(succeed)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = run()
				}
			})
		})
	}
}

func BenchmarkBreakerOpenReject(b *testing.B) { benchSerial(b, BreakerOpenReject, 0) }
