package agentstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrAbortUpdate, returned by an UpdateFunc, ends Update without writing.
var ErrAbortUpdate = errors.New("agentstate: update aborted")

// ErrUpdateConflict is returned (wrapped) when Update ran out of attempts
// because other writers kept changing the key first. Nothing was written.
var ErrUpdateConflict = errors.New("agentstate: update gave up after repeated conflicts")

// UpdateFunc computes a key's new value from its current item (nil when the
// key does not exist). It may run several times, once per attempt, always on
// the latest state seen; it must not have side effects it cannot repeat.
// Return ErrAbortUpdate to stop without writing.
type UpdateFunc func(current *pb.Item) ([]byte, error)

// UpdateOptions shape an Update. The zero value is fine.
type UpdateOptions struct {
	// ContentType of the new value; empty keeps the current item's.
	ContentType string
	// TTL, when positive, makes the key expire; otherwise the written value
	// has no expiry.
	TTL time.Duration
	// Fence ties every write to a lock acquisition (see Held.Fence).
	Fence *pb.Fence
	// MaxAttempts bounds the compare-and-set attempts; default 100.
	MaxAttempts int
	// Backoff between conflicting attempts; default 10 ms doubling up to 1 s.
	Backoff Backoff
	// Consistency of the first read; the default (linearizable) is right for
	// almost everyone. Later attempts use the item the failed CAS returned.
	Consistency pb.Consistency
}

// UpdateResult reports an Update.
type UpdateResult struct {
	// Applied is false only when fn returned ErrAbortUpdate.
	Applied bool
	// Item is the written item, or the current one (nil: absent) when aborted.
	Item *pb.Item
	// Revision of the write, or of the state fn last saw when aborted.
	Revision int64
	// Attempts counts compare-and-set attempts (0 when fn aborted at once).
	Attempts int
}

// Update applies fn to a key atomically: it reads the key, writes fn's value
// with compare-and-set on the version read (or on absence), and when another
// writer got there first it calls fn again on the current item the failed
// compare-and-set returned (no second read), after a jittered backoff. So no
// update is ever lost or applied to a stale value. Each attempt carries its own
// idempotency key, so an attempt whose reply is lost (UNAVAILABLE,
// DEADLINE_EXCEEDED) is retried as the same request and applies at most once.
func (c *Client) Update(ctx context.Context, namespace, key string, opts *UpdateOptions, fn UpdateFunc) (*UpdateResult, error) {
	var o UpdateOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 100
	}
	backoff := o.Backoff.withDefaults(10*time.Millisecond, time.Second)
	transient := Backoff{}.withDefaults(100*time.Millisecond, 2*time.Second)

	got, err := retryTransient(ctx, c, 3, transient, func(ctx context.Context) (*pb.GetResponse, error) {
		return c.KV.Get(ctx, &pb.GetRequest{Namespace: namespace, Key: key, Consistency: o.Consistency})
	})
	if err != nil {
		return nil, err
	}
	var current *pb.Item
	if got.GetFound() {
		current = got.GetItem()
	}
	revision := got.GetHeader().GetRevision()

	for attempt := 1; ; attempt++ {
		value, err := fn(current)
		if errors.Is(err, ErrAbortUpdate) {
			return &UpdateResult{Applied: false, Item: current, Revision: revision, Attempts: attempt - 1}, nil
		}
		if err != nil {
			return nil, err
		}
		req := &pb.CompareAndSetRequest{
			Namespace:      namespace,
			Key:            key,
			Value:          value,
			ContentType:    o.ContentType,
			Fence:          o.Fence,
			IdempotencyKey: NewIdempotencyKey(),
		}
		if current == nil {
			req.Expected = &pb.Expected{Condition: &pb.Expected_Absent{Absent: true}}
		} else {
			req.Expected = &pb.Expected{Condition: &pb.Expected_Version{Version: current.GetVersion()}}
			if req.ContentType == "" {
				req.ContentType = current.GetContentType()
			}
		}
		if o.TTL > 0 {
			req.Ttl = durationpb.New(o.TTL)
		}
		res, err := retryTransient(ctx, c, 3, transient, func(ctx context.Context) (*pb.CompareAndSetResponse, error) {
			return c.KV.CompareAndSet(ctx, req)
		})
		if err != nil {
			return nil, err
		}
		if res.GetApplied() {
			return &UpdateResult{Applied: true, Item: res.GetItem(), Revision: res.GetHeader().GetRevision(), Attempts: attempt}, nil
		}
		if attempt >= o.MaxAttempts {
			return nil, fmt.Errorf("%w (%d attempts on %s/%s)", ErrUpdateConflict, attempt, namespace, key)
		}
		// The mismatch reply carries the current state: retry on it directly.
		current = nil
		if res.GetFound() {
			current = res.GetItem()
		}
		revision = res.GetHeader().GetRevision()
		if err := backoff.sleep(ctx, attempt); err != nil {
			return nil, err
		}
	}
}
