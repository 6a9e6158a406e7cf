package agentstate

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Backoff is a jittered exponential backoff: before retry n (1-based) it
// sleeps a uniformly random time in [0, min(Max, Initial·2^(n-1))] ("full
// jitter"), which spreads contending clients apart fastest.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

func (b Backoff) withDefaults(initial, max time.Duration) Backoff {
	if b.Initial <= 0 {
		b.Initial = initial
	}
	if b.Max <= 0 {
		b.Max = max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// delay is the sleep before retry n (n >= 1).
func (b Backoff) delay(n int) time.Duration {
	d := b.Max
	if n < 32 {
		if e := b.Initial << (n - 1); e > 0 && e < b.Max {
			d = e
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// sleep waits for retry n's delay or until ctx is done.
func (b Backoff) sleep(ctx context.Context, n int) error {
	t := time.NewTimer(b.delay(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// IsRetryable reports whether err is a failure after which the outcome of the
// call is unknown but a retry may succeed: UNAVAILABLE (no server, a server
// shutting down, Postgres down) or DEADLINE_EXCEEDED. A write may only be
// retried blindly when it carries an idempotency key.
func IsRetryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	default:
		return false
	}
}

// retryTransient runs call up to 1+retries times while it fails with a
// retryable error and ctx is live. Each attempt gets its own default deadline
// (bounded by ctx's), so a retry after DEADLINE_EXCEEDED has time to run.
func retryTransient[T any](ctx context.Context, c *Client, retries int, b Backoff, call func(context.Context) (T, error)) (T, error) {
	for n := 0; ; n++ {
		attemptCtx, cancel := context.WithTimeout(ctx, c.timeout)
		res, err := call(attemptCtx)
		cancel()
		if err == nil || !IsRetryable(err) || n >= retries || ctx.Err() != nil {
			return res, err
		}
		if serr := b.sleep(ctx, n+1); serr != nil {
			return res, err
		}
	}
}
