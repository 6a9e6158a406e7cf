package agentstate_test

// These tests run against a live agentstate server whose address is in
// AGENTSTATE_ADDRESS (e.g. 127.0.0.1:50051); .ci/clients starts one. Without
// the variable every test is skipped, saying so. Each run works in its own
// namespace, so the server may be shared and reused.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentstate "github.com/agentstate/agentstate/clients/go"
	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

var namespace = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "gotest-" + hex.EncodeToString(b[:])
}()

func address(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("AGENTSTATE_ADDRESS")
	if addr == "" {
		t.Skip("AGENTSTATE_ADDRESS is not set: these tests need a live agentstate server (see .ci/clients)")
	}
	return addr
}

func newClient(t *testing.T, opts *agentstate.Options) *agentstate.Client {
	t.Helper()
	c, err := agentstate.New(address(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func absent() *pb.Expected        { return &pb.Expected{Condition: &pb.Expected_Absent{Absent: true}} }
func unconditional() *pb.Expected { return &pb.Expected{Condition: &pb.Expected_Any{Any: true}} }
func version(v int64) *pb.Expected {
	return &pb.Expected{Condition: &pb.Expected_Version{Version: v}}
}

func mustGet(t *testing.T, c *agentstate.Client, key string) *pb.GetResponse {
	t.Helper()
	r, err := c.Get(ctx(t), &pb.GetRequest{Namespace: namespace, Key: key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return r
}

func TestKeyValueRoundTrip(t *testing.T) {
	c := newClient(t, nil)
	put, err := c.CompareAndSet(ctx(t), &pb.CompareAndSetRequest{Namespace: namespace, Key: "rt/a", Expected: absent(), Value: []byte("hello"), ContentType: "text/plain"})
	if err != nil || !put.Applied || put.Item.Version != 1 {
		t.Fatalf("create: %v %v", put, err)
	}
	got := mustGet(t, c, "rt/a")
	if !got.Found || string(got.Item.Value) != "hello" || got.Header.Revision < put.Header.Revision {
		t.Fatalf("get: %v", got)
	}
	// A stale version is not an error: the reply carries the current item.
	stale, err := c.CompareAndSet(ctx(t), &pb.CompareAndSetRequest{Namespace: namespace, Key: "rt/a", Expected: version(7), Value: []byte("x")})
	if err != nil || stale.Applied || !stale.Found || string(stale.Item.Value) != "hello" {
		t.Fatalf("stale CAS: %v %v", stale, err)
	}
	list, err := c.List(ctx(t), &pb.ListRequest{Namespace: namespace, Prefix: "rt/"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Key != "rt/a" {
		t.Fatalf("list: %v %v", list, err)
	}
	del, err := c.Delete(ctx(t), &pb.DeleteRequest{Namespace: namespace, Key: "rt/a", Expected: version(1)})
	if err != nil || !del.Applied {
		t.Fatalf("delete: %v %v", del, err)
	}
	if mustGet(t, c, "rt/a").Found {
		t.Fatal("deleted key still found")
	}
}

func TestInvalidArgumentNamesTheField(t *testing.T) {
	c := newClient(t, nil)
	_, err := c.Get(ctx(t), &pb.GetRequest{Namespace: namespace, Key: ""})
	if status.Code(err) != codes.InvalidArgument || !bytes.Contains([]byte(status.Convert(err).Message()), []byte("key")) {
		t.Fatalf("want INVALID_ARGUMENT naming key, got %v", err)
	}
}

// The client's message limit matches the server's: the largest value the
// server accepts goes through, and one byte more gets the server's own
// INVALID_ARGUMENT (naming the field), not a transport error.
func TestValueLimitIsTheServers(t *testing.T) {
	c := newClient(t, nil)
	max := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := c.Put(ctx(t), namespace, "big", max, nil); err != nil {
		t.Fatalf("1 MiB value: %v", err)
	}
	if got := mustGet(t, c, "big"); len(got.Item.Value) != 1<<20 {
		t.Fatalf("read back %d bytes", len(got.Item.Value))
	}
	_, err := c.Put(ctx(t), namespace, "big", append(max, 'x'), nil)
	if status.Code(err) != codes.InvalidArgument || !bytes.Contains([]byte(status.Convert(err).Message()), []byte("value")) {
		t.Fatalf("1 MiB + 1: want INVALID_ARGUMENT naming value, got %v", err)
	}
}

func TestEveryCallHasADeadline(t *testing.T) {
	var seen atomic.Int32
	var missing atomic.Int32
	check := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		seen.Add(1)
		if _, ok := ctx.Deadline(); !ok {
			missing.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c := newClient(t, &agentstate.Options{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(check)}})
	bg := context.Background() // no deadline of its own
	_, _ = c.Get(bg, &pb.GetRequest{Namespace: namespace, Key: "dl"})
	_, _ = c.Put(bg, namespace, "dl", []byte("1"), nil)
	_, _ = c.Update(bg, namespace, "dl", nil, func(*pb.Item) ([]byte, error) { return []byte("2"), nil })
	_ = c.WithLock(bg, namespace, "dl", &agentstate.LockOptions{TTL: time.Second}, func(context.Context, *agentstate.Held) error { return nil })
	if seen.Load() < 6 || missing.Load() != 0 {
		t.Fatalf("%d calls, %d without a deadline", seen.Load(), missing.Load())
	}
}

// 10 concurrent updaters × 20 increments each: no increment is lost.
func TestUpdateNeverLosesAnIncrement(t *testing.T) {
	const workers, increments = 10, 20
	key := "counter"
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		c := newClient(t, nil) // one client (connection) per agent
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < increments; i++ {
				_, err := c.Update(ctx(t), namespace, key, nil, func(cur *pb.Item) ([]byte, error) {
					n := 0
					if cur != nil {
						var err error
						if n, err = strconv.Atoi(string(cur.Value)); err != nil {
							return nil, err
						}
					}
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := mustGet(t, newClient(t, nil), key)
	if string(got.Item.Value) != strconv.Itoa(workers*increments) || got.Item.Version != workers*increments {
		t.Fatalf("counter = %q at version %d, want %d", got.Item.Value, got.Item.Version, workers*increments)
	}
}

func TestUpdateAbortWritesNothing(t *testing.T) {
	c := newClient(t, nil)
	if _, err := c.Put(ctx(t), namespace, "abort", []byte("keep"), nil); err != nil {
		t.Fatal(err)
	}
	res, err := c.Update(ctx(t), namespace, "abort", nil, func(cur *pb.Item) ([]byte, error) {
		if string(cur.GetValue()) == "keep" {
			return nil, agentstate.ErrAbortUpdate
		}
		return []byte("changed"), nil
	})
	if err != nil || res.Applied || string(res.Item.GetValue()) != "keep" {
		t.Fatalf("abort: %+v %v", res, err)
	}
	if got := mustGet(t, c, "abort"); got.Item.Version != 1 {
		t.Fatalf("aborted update wrote: version %d", got.Item.Version)
	}
	boom := errors.New("boom")
	if _, err := c.Update(ctx(t), namespace, "abort", nil, func(*pb.Item) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error not returned: %v", err)
	}
}

func TestUpdateKeepsContentTypeAndCreatesAbsentKeys(t *testing.T) {
	c := newClient(t, nil)
	res, err := c.Update(ctx(t), namespace, "ct", &agentstate.UpdateOptions{ContentType: "application/json"}, func(cur *pb.Item) ([]byte, error) {
		if cur != nil {
			t.Errorf("first update saw %v, want absent", cur)
		}
		return []byte(`{"n":1}`), nil
	})
	if err != nil || !res.Applied || res.Item.Version != 1 {
		t.Fatalf("create: %+v %v", res, err)
	}
	res, err = c.Update(ctx(t), namespace, "ct", nil, func(*pb.Item) ([]byte, error) { return []byte(`{"n":2}`), nil })
	if err != nil || res.Item.ContentType != "application/json" || res.Item.Version != 2 {
		t.Fatalf("second update: %+v %v", res, err)
	}
}

// Workers across several clients take turns under one lock; each does a
// read-modify-write that is only correct under mutual exclusion.
func TestWithLockMutualExclusion(t *testing.T) {
	const workers, rounds = 4, 5
	var active, maxActive atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		c := newClient(t, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				err := c.WithLock(ctx(t), namespace, "mutex", &agentstate.LockOptions{TTL: 5 * time.Second, Owner: "worker"}, func(ctx context.Context, held *agentstate.Held) error {
					n := active.Add(1)
					defer active.Add(-1)
					for {
						m := maxActive.Load()
						if n <= m || maxActive.CompareAndSwap(m, n) {
							break
						}
					}
					got, err := c.Get(ctx, &pb.GetRequest{Namespace: namespace, Key: "mutex/count"})
					if err != nil {
						return err
					}
					count := 0
					if got.Found {
						count, _ = strconv.Atoi(string(got.Item.Value))
					}
					time.Sleep(5 * time.Millisecond)
					_, err = c.Put(ctx, namespace, "mutex/count", []byte(strconv.Itoa(count+1)), &agentstate.PutOptions{Fence: held.Fence()})
					return err
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxActive.Load() != 1 {
		t.Fatalf("%d holders at once", maxActive.Load())
	}
	if got := mustGet(t, newClient(t, nil), "mutex/count"); string(got.Item.Value) != strconv.Itoa(workers*rounds) {
		t.Fatalf("count = %s, want %d", got.Item.Value, workers*rounds)
	}
}

func tryLock(t *testing.T, c *agentstate.Client, name string) *pb.LockResponse {
	t.Helper()
	r, err := c.Lock(ctx(t), &pb.LockRequest{Namespace: namespace, Name: name, Ttl: durationpb.New(5 * time.Second), Owner: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Acquired {
		if _, err := c.Unlock(ctx(t), &pb.UnlockRequest{Namespace: namespace, Name: name, LockId: r.LockId}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestWithLockRenewsPastItsTTLAndReleases(t *testing.T) {
	c := newClient(t, nil)
	probe := newClient(t, nil)
	err := c.WithLock(ctx(t), namespace, "renewed", &agentstate.LockOptions{TTL: time.Second, Owner: "long-job"}, func(ctx context.Context, held *agentstate.Held) error {
		time.Sleep(2500 * time.Millisecond) // 2.5 × TTL
		if r := tryLock(t, probe, "renewed"); r.Acquired || r.HolderOwner != "long-job" {
			t.Errorf("lock not held after 2.5 TTLs: %v", r)
		}
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := tryLock(t, probe, "renewed"); !r.Acquired {
		t.Fatalf("lock not released: %v", r)
	}
}

func TestWithLockCancelsFnWhenTheLockIsLost(t *testing.T) {
	c := newClient(t, nil)
	err := c.WithLock(ctx(t), namespace, "lost", &agentstate.LockOptions{TTL: 900 * time.Millisecond}, func(ctx context.Context, held *agentstate.Held) error {
		// Someone releases our lock behind our back: the next renewal fails.
		if _, err := c.Unlock(ctx, &pb.UnlockRequest{Namespace: namespace, Name: "lost", LockId: held.LockID}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if !errors.Is(context.Cause(ctx), agentstate.ErrLockLost) {
				t.Errorf("cause = %v", context.Cause(ctx))
			}
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("fn's context was not cancelled")
		}
	})
	if !errors.Is(err, agentstate.ErrLockLost) {
		t.Fatalf("want ErrLockLost, got %v", err)
	}
}

func TestWithLockNotAcquired(t *testing.T) {
	c := newClient(t, nil)
	held, err := c.Lock(ctx(t), &pb.LockRequest{Namespace: namespace, Name: "busy", Ttl: durationpb.New(10 * time.Second), Owner: "first"})
	if err != nil || !held.Acquired {
		t.Fatal(held, err)
	}
	defer func() {
		_, _ = c.Unlock(ctx(t), &pb.UnlockRequest{Namespace: namespace, Name: "busy", LockId: held.LockId})
	}()
	err = c.WithLock(ctx(t), namespace, "busy", &agentstate.LockOptions{Wait: 200 * time.Millisecond}, func(context.Context, *agentstate.Held) error {
		t.Error("fn ran without the lock")
		return nil
	})
	var na *agentstate.LockNotAcquiredError
	if !errors.As(err, &na) || na.HolderOwner != "first" {
		t.Fatalf("want LockNotAcquiredError held by first, got %v", err)
	}
}

// A holder whose lock was taken over cannot write with its old fence.
func TestStaleFenceIsRefused(t *testing.T) {
	c := newClient(t, nil)
	var old *agentstate.Held
	if err := c.WithLock(ctx(t), namespace, "fenced", nil, func(_ context.Context, h *agentstate.Held) error { old = h; return nil }); err != nil {
		t.Fatal(err)
	}
	err := c.WithLock(ctx(t), namespace, "fenced", nil, func(ctx context.Context, h *agentstate.Held) error {
		if h.Token <= old.Token {
			t.Errorf("token %d not above %d", h.Token, old.Token)
		}
		_, err := c.Put(ctx, namespace, "fenced/v", []byte("new"), &agentstate.PutOptions{Fence: h.Fence()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Put(ctx(t), namespace, "fenced/v", []byte("old"), &agentstate.PutOptions{Fence: old.Fence()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stale fence: want FAILED_PRECONDITION, got %v", err)
	}
}

// The first attempt reaches the server and is applied, but its reply is lost
// (the interceptor turns it into UNAVAILABLE). Put retries with the same
// idempotency key: the server replays the first outcome and writes nothing.
func TestPutRetryWithTheSameKeyWritesOnce(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	dropFirst := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if cas, ok := req.(*pb.CompareAndSetRequest); ok {
			mu.Lock()
			defer mu.Unlock()
			keys = append(keys, cas.IdempotencyKey)
			if len(keys) == 1 && err == nil {
				return status.Error(codes.Unavailable, "reply lost (test)")
			}
		}
		return err
	}
	c := newClient(t, &agentstate.Options{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(dropFirst)}})
	res, err := c.Put(ctx(t), namespace, "once", []byte("paid"), &agentstate.PutOptions{Expected: absent()})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("attempts carried keys %q, want the same key twice", keys)
	}
	if !res.Applied || !res.Replayed || res.Item.Version != 1 {
		t.Fatalf("retry: %+v", res)
	}
	if got := mustGet(t, c, "once"); got.Item.Version != 1 {
		t.Fatalf("written %d times", got.Item.Version)
	}
	// A new Put is a new logical write with a new key.
	res, err = c.Put(ctx(t), namespace, "once", []byte("again"), &agentstate.PutOptions{Expected: unconditional()})
	if err != nil || res.Replayed || res.Item.Version != 2 || keys[2] == keys[0] {
		t.Fatalf("second put: %+v %v (keys %q)", res, err, keys)
	}
}
