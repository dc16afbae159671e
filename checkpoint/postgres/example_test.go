package postgres_test

import (
	"context"
	"log"
	"net/http"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/postgres"
	"github.com/rebound-go/rebound/job"
)

// Every worker, on every machine, runs the same program against the same
// database: the first loads the manifest, the others join, and the items of
// a worker that dies return to the others when its leases expire.
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, "postgres://rebound@db.internal:5432/jobs?search_path=rebound", checkpoint.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := job.LoadManifest(ctx, st, "orders", "orders.jsonl"); err != nil {
		log.Fatal(err)
	}
	// A PostgreSQL store is no checkpoint.RunLocker: other workers are alive,
	// so Run never takes their leases back.
	sum, err := job.Run(ctx, job.Config{Job: "orders", Store: st}, job.HTTPHandler(http.DefaultClient, "."))
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%d done, %d dead", sum.Done, sum.Dead)
}
