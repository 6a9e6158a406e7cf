package agentstate_test

import (
	"context"
	"strconv"
	"time"

	agentstate "github.com/agentstate/agentstate/clients/go"
	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
)

// Compiled (not run) examples; README.md shows the same code.

func ExampleClient_Update() {
	c, err := agentstate.New("127.0.0.1:50051", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// fn gets the current item (nil if absent); return ErrAbortUpdate to stop.
	_, _ = c.Update(context.Background(), "demo", "counter", nil, func(cur *pb.Item) ([]byte, error) {
		n := 0
		if cur != nil {
			n, _ = strconv.Atoi(string(cur.Value))
		}
		return []byte(strconv.Itoa(n + 1)), nil
	})
}

func ExampleClient_WithLock() {
	c, err := agentstate.New("127.0.0.1:50051", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// Pass held.Fence() with every write; stop when ctx is cancelled (lock lost).
	_ = c.WithLock(context.Background(), "demo", "orders", &agentstate.LockOptions{TTL: 10 * time.Second, Owner: "worker-3"},
		func(ctx context.Context, held *agentstate.Held) error {
			_, err := c.Put(ctx, "demo", "orders/7", []byte("shipped"), &agentstate.PutOptions{Fence: held.Fence()})
			return err
		})
}

func ExampleClient_Put() {
	c, err := agentstate.New("127.0.0.1:50051", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// Retried with the same idempotency key after a lost reply; a replay answers Replayed=true.
	_, _ = c.Put(context.Background(), "demo", "payments/991", []byte(`{"amount":10}`),
		&agentstate.PutOptions{ContentType: "application/json"})
}
