module github.com/rebound-go/rebound/e2e

go 1.26.0

replace github.com/rebound-go/rebound => ../
