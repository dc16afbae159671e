package rebound_test

import (
	"context"
	"errors"
	"testing"

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
		for b.Loop() {
			_ = br.Do(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Do(ctx, fn)
			}
		})
	})
}

func BenchmarkBreakerOpenReject(b *testing.B) {
	br := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 1})
	ctx := context.Background()
	_ = br.Do(ctx, func(context.Context) error { return errFlaky })
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
