package agentstate_test

import (
	"context"
	"fmt"
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
	_, _ = c.Update(context.Background(), "demo-go", "counter", nil, func(cur *pb.Item) ([]byte, error) {
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
	_ = c.WithLock(context.Background(), "demo-go", "orders", &agentstate.LockOptions{TTL: 10 * time.Second, Owner: "worker-3"},
		func(ctx context.Context, held *agentstate.Held) error {
			_, err := c.Put(ctx, "demo-go", "orders/7", []byte("shipped"), &agentstate.PutOptions{Fence: held.Fence()})
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
	_, _ = c.Put(context.Background(), "demo-go", "payments/991", []byte(`{"amount":10}`),
		&agentstate.PutOptions{ContentType: "application/json"})
}

func ExampleClient_AppendEvent() {
	c, err := agentstate.New("127.0.0.1:50051", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// Ids are generated once per call and re-sent on retries: a lost reply is replayed, not appended twice.
	res, err := c.AppendEvent(context.Background(), "demo-go", "cart-42", []*pb.EventData{
		{Type: "item_added", Data: []byte(`{"sku":"A-1"}`), Metadata: map[string]string{"agent": "shopper"}},
		{Type: "checkout_started", Data: []byte(`{}`)},
	}, agentstate.ExpectNoStream(), nil)
	if err == nil && !res.Applied {
		fmt.Println("the stream already exists, at version", res.CurrentVersion)
	}
}

func ExampleClient_ReadStream() {
	c, err := agentstate.New("127.0.0.1:50051", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// Newest first, at most 10 events.
	req := &pb.ReadStreamRequest{Namespace: "demo-go", Stream: "cart-42", Direction: pb.Direction_DIRECTION_BACKWARDS, Limit: 10}
	for e, err := range c.ReadStream(context.Background(), req) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.StreamVersion, e.Type)
	}
}

func ExampleClient_Subscribe() {
	c, err := agentstate.New("127.0.0.1:50051", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var saved int64 // e.g. loaded from your own storage
	req := &pb.SubscribeRequest{
		Namespace:     "demo-go",
		Target:        &pb.SubscribeRequest_StreamPrefix{StreamPrefix: "cart-"},
		AfterPosition: saved,
	}
	// Blocks until ctx is cancelled (or fn fails); resubscribes from the last
	// position after UNAVAILABLE, RESOURCE_EXHAUSTED or a lost connection.
	last, err := c.Subscribe(ctx, req, nil, func(m *pb.SubscribeResponse) error {
		if e := m.GetEvent(); e != nil {
			fmt.Println(e.Stream, e.StreamVersion, e.Type, e.Position)
		} else {
			fmt.Println("caught up at", m.GetCaughtUp().GetPosition())
		}
		return nil
	})
	fmt.Println("resume after", last, err)
}
