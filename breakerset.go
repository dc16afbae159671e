package rebound

import (
	"sync"
	"sync/atomic"
)

// BreakerSet keeps one Breaker per key (a host, a tenant, an endpoint), so
// one failing dependency does not stall calls to healthy ones. Looking up an
// existing key takes no lock. Safe for concurrent use.
type BreakerSet struct {
	cfg     BreakerConfig
	maxKeys int

	m     sync.Map // key -> *Breaker
	count atomic.Int64
	mu    sync.Mutex // serialises inserts and evictions
}

// NewBreakerSet returns a set whose breakers all use cfg (each named by its
// key, and reporting its key as the name to cfg.OnStateChange). maxKeys
// bounds the set (0 means 1024): when it is full, a closed breaker is
// evicted to make room, and if every breaker is open or half-open the
// oldest-found one is.
func NewBreakerSet(cfg BreakerConfig, maxKeys int) (*BreakerSet, error) {
	if maxKeys < 0 {
		return nil, &ConfigError{"BreakerSet maxKeys", "negative"}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if maxKeys == 0 {
		maxKeys = 1024
	}
	return &BreakerSet{cfg: cfg, maxKeys: maxKeys}, nil
}

// Get returns the breaker for key, creating it when needed.
func (s *BreakerSet) Get(key string) *Breaker {
	if b, ok := s.m.Load(key); ok {
		return b.(*Breaker)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m.Load(key); ok {
		return b.(*Breaker)
	}
	if s.count.Load() >= int64(s.maxKeys) {
		s.evictOne()
	}
	cfg := s.cfg
	cfg.Name = key
	b, _ := NewBreaker(cfg) // cfg was validated in NewBreakerSet
	s.m.Store(key, b)
	s.count.Add(1)
	return b
}

// evictOne drops a closed breaker if there is one, else any breaker.
func (s *BreakerSet) evictOne() {
	var victim any
	s.m.Range(func(k, v any) bool {
		if victim == nil {
			victim = k
		}
		if v.(*Breaker).State() == StateClosed {
			victim = k
			return false
		}
		return true
	})
	if victim != nil {
		if b, ok := s.m.LoadAndDelete(victim); ok {
			b.(*Breaker).Stop()
			s.count.Add(-1)
		}
	}
}

// Len returns the number of breakers in the set.
func (s *BreakerSet) Len() int { return int(s.count.Load()) }

// Each calls f for every breaker in the set, for status displays.
func (s *BreakerSet) Each(f func(key string, b *Breaker)) {
	s.m.Range(func(k, v any) bool {
		f(k.(string), v.(*Breaker))
		return true
	})
}
