// Command quickstart is the README's 20-line example: one HTTP call through
// a rebound.Pipeline with the mission's defaults.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/rebound-go/rebound"
)

func main() {
	url := "https://example.com/"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	breaker, _ := rebound.NewBreaker(rebound.BreakerConfig{}) // 5 failures → open 60 s
	p := rebound.Pipeline{
		Retry:   rebound.Retry{Name: "fetch status"}, // 5 attempts, 1 s ×2 ≤ 30 s, ×[0.8, 1.2]
		Breaker: breaker,
		Timeout: 10 * time.Second, // per attempt
	}
	code, err := rebound.Get(context.Background(), &p, func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return 0, rebound.Permanent(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err // reset, refused, timeout: transient, retried
		}
		resp.Body.Close()
		if c := rebound.ClassifyStatus(resp.StatusCode, true, 0); c.Kind != rebound.KindNone {
			return 0, &statusErr{resp.StatusCode, c} // 503 retried, 404 not
		}
		return resp.StatusCode, nil
	})
	fmt.Println(code, err)
}

type statusErr struct {
	code  int
	class rebound.Class
}

func (e *statusErr) Error() string        { return fmt.Sprintf("HTTP %d", e.code) }
func (e *statusErr) Class() rebound.Class { return e.class }
