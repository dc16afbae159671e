package job

import (
	"context"
	"errors"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
)

// A negative setting is a *rebound.ConfigError naming the field, never
// silently the default.
func TestConfigNegativesAreErrors(t *testing.T) {
	st := checkpoint.NewMemory(checkpoint.Options{})
	for field, set := range map[string]func(*Config){
		"job.Config.Concurrency":  func(c *Config) { c.Concurrency = -1 },
		"job.Config.MaxAttempts":  func(c *Config) { c.MaxAttempts = -1 },
		"job.Config.Timeout":      func(c *Config) { c.Timeout = -1 },
		"job.Config.LeaseTTL":     func(c *Config) { c.LeaseTTL = -1 },
		"job.Config.Grace":        func(c *Config) { c.Grace = -1 },
		"job.Config.PollInterval": func(c *Config) { c.PollInterval = -1 },
	} {
		cfg := Config{Job: "j", Store: st}
		set(&cfg)
		_, err := Run(context.Background(), cfg, func(context.Context, *Task) error { return nil })
		var ce *rebound.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s negative: %v, want a *rebound.ConfigError for it", field, err)
		}
	}
}
