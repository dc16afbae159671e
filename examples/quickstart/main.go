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
	"github.com/rebound-go/rebound/reboundhttp"
)

func main() {
	url := "https://example.com/"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	// Timeouts, a stall cut and safe redirects, no retries (the Pipeline's):
	// made once, reused by every attempt.
	client, _ := reboundhttp.NewBaseClient(reboundhttp.Config{}) // the zero Config is valid

	breaker, _ := rebound.NewBreaker(rebound.BreakerConfig{}) // 5 failures → open 1 s, growing to 60 s
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
		resp, err := client.Do(req)
		if err != nil {
			return 0, err // reset, refused, timeout: transient, retried
		}
		if err := reboundhttp.CheckResponse(resp); err != nil {
			return 0, err // a classified *reboundhttp.StatusError: 503 retried, 404 not
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	})
	fmt.Println(code, err)
}
