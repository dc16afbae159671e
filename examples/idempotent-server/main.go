// Command idempotent-server is a small order API whose POST /orders is made
// safe to retry by the idempotency middleware, with records kept in SQLite
// so that deduplication survives a restart.
//
//	go run ./examples/idempotent-server -addr 127.0.0.1:8080 -db orders-idem.db
//	curl -i -X POST -H 'Idempotency-Key: "order-1"' -d '{"item":"book"}' http://127.0.0.1:8080/orders
//
// Send the curl twice: the second answer is the first one again, with
// "Idempotent-Replayed: true", and no second order is created.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/rebound-go/rebound/idempotency"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	dbPath := flag.String("db", "idempotency.db", "SQLite file for the idempotency records")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *dbPath, log); err != nil {
		log.Error("server stopped", "err", err)
		os.Exit(1)
	}
}

func run(addr, dbPath string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := idempotency.NewSQLStore(db, idempotency.SQLite, "")
	if err != nil {
		return err
	}
	if err := store.Init(ctx); err != nil { // find a bad file now, not on the first order
		return err
	}

	const writeTimeout = 30 * time.Second
	m, err := idempotency.New(store, idempotency.Config{
		// A real API sets Principal to return the authenticated client.
		// This demo has no accounts: the default scopes keys by a hash of
		// the credentials a request carries (Authorization, Cookie, ...).
		LockTimeout: 2 * writeTimeout, // longer than any handler may run
		Logger:      log,
	})
	if err != nil {
		return err
	}

	var orders atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("POST /orders", m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		item, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		id := orders.Add(1) // the effect that must not happen twice
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", fmt.Sprintf("/orders/%d", id))
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": id, "request": json.RawMessage(validJSON(item))})
	})))

	srv := &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	// Prune expired records now and then; requests also prune lazily.
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n, err := m.Prune(ctx); err != nil {
					log.Warn("prune failed", "err", err)
				} else {
					log.Info("pruned idempotency records", "deleted", n)
				}
			}
		}
	}()
	log.Info("listening", "addr", addr, "db", dbPath)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// validJSON returns b if it is JSON, else null, so the echo stays valid.
func validJSON(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	return []byte("null")
}
