package memory_test

import (
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/checkpoint/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, path string, cfg checkpoint.Config) checkpoint.Store {
			return memory.New(cfg)
		},
	})
}
