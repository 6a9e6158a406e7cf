package agentstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrLockLost is the cause of the callback context's cancellation (and is
// wrapped in WithLock's error) when the lock could not be renewed: it expired,
// was released or was taken over, or the server could not be reached before
// it would have expired. Writes fenced with the lock's token are refused once
// a newer holder exists, so a holder that lost its lock cannot corrupt state.
var ErrLockLost = errors.New("agentstate: lock lost")

// LockNotAcquiredError is returned by WithLock when the lock stayed held by
// someone else for the whole wait.
type LockNotAcquiredError struct {
	Namespace, Name string
	// HolderOwner is the current holder's owner string, when the server knows it.
	HolderOwner string
}

func (e *LockNotAcquiredError) Error() string {
	holder := ""
	if e.HolderOwner != "" {
		holder = fmt.Sprintf(" (held by %q)", e.HolderOwner)
	}
	return fmt.Sprintf("agentstate: lock %s/%s not acquired%s", e.Namespace, e.Name, holder)
}

// LockOptions shape WithLock. The zero value is fine.
type LockOptions struct {
	// TTL of the lock between renewals; default 15 s.
	TTL time.Duration
	// Wait for the lock at most this long; default 30 s; negative tries once.
	Wait time.Duration
	// Owner describes the holder to other waiters (e.g. "worker-3").
	Owner string
	// RenewEvery is the renewal period; default TTL/3.
	RenewEvery time.Duration
}

// Held describes a lock acquisition.
type Held struct {
	Namespace string
	Name      string
	// LockID proves holdership to Unlock and RenewLock.
	LockID string
	// Token is the fencing token: greater than every token issued before for Name.
	Token int64
}

// Fence is the fence to pass with every write made under the lock (in the
// lock's namespace): the server refuses it once a newer token exists.
func (h *Held) Fence() *pb.Fence { return &pb.Fence{LockName: h.Name, Token: h.Token} }

// WithLock acquires the lock (waiting up to opts.Wait), runs fn while renewing
// it every opts.RenewEvery, and releases it when fn returns, whatever happens.
// fn gets the acquisition (pass held.Fence() to every write) and a context
// that is cancelled with cause ErrLockLost if the lock cannot be renewed; fn
// should stop then, and WithLock returns an error wrapping ErrLockLost even if
// fn finished.
func (c *Client) WithLock(ctx context.Context, namespace, name string, opts *LockOptions, fn func(ctx context.Context, held *Held) error) error {
	var o LockOptions
	if opts != nil {
		o = *opts
	}
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 30 * time.Second
	}
	o.Wait = max(o.Wait, 0)
	if o.RenewEvery <= 0 {
		o.RenewEvery = o.TTL / 3
	}

	// The lock is ours for at most TTL from when we asked for it: a local,
	// conservative bound that needs no clock agreement with the server.
	sent := time.Now()
	res, err := c.Lock(ctx, &pb.LockRequest{
		Namespace: namespace,
		Name:      name,
		Ttl:       durationpb.New(o.TTL),
		Wait:      durationpb.New(o.Wait),
		Owner:     o.Owner,
	})
	if err != nil {
		return err
	}
	if !res.GetAcquired() {
		return &LockNotAcquiredError{Namespace: namespace, Name: name, HolderOwner: res.GetHolderOwner()}
	}
	held := &Held{Namespace: namespace, Name: name, LockID: res.GetLockId(), Token: res.GetFencingToken()}

	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The renewer stops when fn returns (stopRenewing), cancelling a renewal in flight.
	renewCtx, stopRenewing := context.WithCancel(fnCtx)
	renewerDone := make(chan struct{})
	var lost error
	go func() {
		defer close(renewerDone)
		if lost = c.keepRenewed(renewCtx, held, o, sent.Add(o.TTL)); lost != nil {
			cancel(lost)
		}
	}()

	fnErr := fn(fnCtx, held)
	stopRenewing()
	<-renewerDone

	// Release even when ctx is done; best effort: an unreleased lock expires.
	relCtx, relCancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	_, _ = c.Locks.Unlock(relCtx, &pb.UnlockRequest{Namespace: namespace, Name: name, LockId: held.LockID})
	relCancel()

	if lost != nil {
		if fnErr != nil && !errors.Is(fnErr, context.Canceled) {
			return errors.Join(lost, fnErr)
		}
		return lost
	}
	return fnErr
}

// keepRenewed renews until ctx is done; it returns a non-nil error wrapping
// ErrLockLost when the lock is (or may be) lost.
func (c *Client) keepRenewed(ctx context.Context, held *Held, o LockOptions, validUntil time.Time) error {
	req := &pb.RenewLockRequest{Namespace: held.Namespace, Name: held.Name, LockId: held.LockID, Ttl: durationpb.New(o.TTL)}
	timer := time.NewTimer(o.RenewEvery)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		sent := time.Now()
		deadline := sent.Add(c.timeout)
		if validUntil.Before(deadline) {
			deadline = validUntil
		}
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		_, err := c.Locks.RenewLock(rctx, req)
		rcancel()
		switch {
		case err == nil:
			validUntil = sent.Add(o.TTL)
			timer.Reset(o.RenewEvery)
		case ctx.Err() != nil:
			return nil
		case status.Code(err) == codes.FailedPrecondition || !time.Now().Before(validUntil):
			return fmt.Errorf("%w: %s/%s (token %d): %w", ErrLockLost, held.Namespace, held.Name, held.Token, err)
		default:
			// Transient: try again soon, while the lock may still be ours.
			timer.Reset(min(max(o.RenewEvery/4, 10*time.Millisecond), time.Until(validUntil)))
		}
	}
}
