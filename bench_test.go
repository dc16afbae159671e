package rebound_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
)

var errFlaky = errors.New("flaky")

func BenchmarkPipelineSuccess(b *testing.B) {
	p := rebound.Pipeline{Breaker: rebound.MustBreaker(rebound.BreakerConfig{})}
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Do(ctx, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRetryFailTwiceZeroDelay(b *testing.B) {
	r := rebound.Retry{Backoff: rebound.NoDelay}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := r.Do(ctx, func(context.Context) error {
			n++
			if n < 3 {
				return errFlaky
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBreakerClosed(b *testing.B) {
	br := rebound.MustBreaker(rebound.BreakerConfig{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = br.Do(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Do(ctx, fn)
			}
		})
	})
}

func BenchmarkBreakerOpenReject(b *testing.B) {
	// Open long enough for the whole benchmark (the first period is 1 s by default).
	br := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 1, FirstOpenFor: time.Minute})
	ctx := context.Background()
	_ = br.Do(ctx, func(context.Context) error { return rebound.Transient(errFlaky) }) // a plain error would not count
	if br.State() != rebound.StateOpen {
		b.Fatal("breaker not open")
	}
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Do(ctx, fn); err == nil {
			b.Fatal("open breaker let a call through")
		}
	}
	br.Stop()
}

// BenchmarkClassifyWrappedReset classifies a reset as net/http returns it:
// *url.Error → *net.OpError → *os.SyscallError → ECONNRESET, under a fmt wrap.
func BenchmarkClassifyWrappedReset(b *testing.B) {
	err := fmt.Errorf("fetch: %w", &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{
		Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}})
	b.ReportAllocs()
	for b.Loop() {
		if rebound.Classify(err).Kind != rebound.KindTransient {
			b.Fatal("not transient")
		}
	}
}

// BenchmarkClassifyPlain is the baseline: an error Classify does not know.
func BenchmarkClassifyPlain(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		rebound.Classify(errFlaky)
	}
}

func BenchmarkBackoffDelay(b *testing.B) {
	bo := rebound.Backoff{}
	b.ReportAllocs()
	var sink time.Duration
	n := 0
	for b.Loop() {
		n = n%8 + 1
		sink += bo.Delay(n, 0, 0.5)
	}
	_ = sink
}

func BenchmarkBudget(b *testing.B) {
	bu, err := rebound.NewBudget(rebound.BudgetConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("RecordCall/serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bu.RecordCall()
		}
	})
	b.Run("RecordCall/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bu.RecordCall()
			}
		})
	})
	b.Run("AllowRetry", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			bu.RecordCall()
			bu.AllowRetry(now)
		}
	})
}
