package agentstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// PutOptions shape one Put. The zero value writes unconditionally, with a
// fresh idempotency key and 3 retries.
type PutOptions struct {
	// Expected is the condition; nil means any (unconditional).
	Expected *pb.Expected
	// ContentType is stored with the value.
	ContentType string
	// TTL, when positive, makes the key expire; otherwise it never does.
	TTL time.Duration
	// Fence ties the write to a lock acquisition (see Held.Fence).
	Fence *pb.Fence
	// IdempotencyKey identifies the logical write; empty generates one. Pass
	// your own to make retries across process restarts idempotent too.
	IdempotencyKey string
	// Retries after UNAVAILABLE or DEADLINE_EXCEEDED; 0 means 3, negative none.
	Retries int
	// Backoff between retries; default 100 ms doubling up to 2 s.
	Backoff Backoff
}

// NewIdempotencyKey returns a random key (128 bits, hex) for one logical write.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Put writes value under one idempotency key and retries the very same request
// after UNAVAILABLE or DEADLINE_EXCEEDED. The server applies a key's request at
// most once and replays its first outcome to every retry (Replayed=true), so a
// write whose reply was lost is neither lost nor doubled.
func (c *Client) Put(ctx context.Context, namespace, key string, value []byte, opts *PutOptions) (*pb.CompareAndSetResponse, error) {
	var o PutOptions
	if opts != nil {
		o = *opts
	}
	expected := o.Expected
	if expected == nil {
		expected = &pb.Expected{Condition: &pb.Expected_Any{Any: true}}
	}
	if o.IdempotencyKey == "" {
		o.IdempotencyKey = NewIdempotencyKey()
	}
	req := &pb.CompareAndSetRequest{
		Namespace:      namespace,
		Key:            key,
		Expected:       expected,
		Value:          value,
		ContentType:    o.ContentType,
		IdempotencyKey: o.IdempotencyKey,
		Fence:          o.Fence,
	}
	if o.TTL > 0 {
		req.Ttl = durationpb.New(o.TTL)
	}
	retries := o.Retries
	if retries == 0 {
		retries = 3
	}
	return retryTransient(ctx, c, max(retries, 0), o.Backoff.withDefaults(100*time.Millisecond, 2*time.Second),
		func(ctx context.Context) (*pb.CompareAndSetResponse, error) { return c.KV.CompareAndSet(ctx, req) })
}
