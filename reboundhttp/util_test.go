package reboundhttp_test

import (
	"net/http"
	"runtime"

	"github.com/rebound-go/rebound/reboundhttp"
)

func runtimeGoroutines() int { return runtime.NumGoroutine() }

// must is a constructor's value; its error (a bad Config in a test) panics.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// checked is a call whose failed status is an error: the call's own error,
// or CheckResponse's.
func checked(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		return nil, err
	}
	if err := reboundhttp.CheckResponse(resp); err != nil {
		return nil, err
	}
	return resp, nil
}
