// A subscriber process of bench/run.mjs --fanout-procs P --fanout-client go:
// `count` Subscribe streams of one stream over one gRPC connection of its
// own, with grpc-go and the generated Go code of clients/go (one goroutine per
// stream), so the subscribers' side of the measurement costs what a compiled
// client costs, not what a Node one does. Each receipt is stamped with
// CLOCK_MONOTONIC, the clock of Node's process.hrtime.bigint() (the parent
// checks that with "ping", as for bench/lib/fanoutSubscribers.mjs).
//
//	args: ADDRESS NAMESPACE STREAM COUNT
//	stdout, one JSON object a line: {"ready":true} once every stream has caught up,
//	{"pong":N,"at":T} for each {"ping":N} on stdin, {"recv":[position, at, ...]} for {"stop":true}
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"

	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fanout-go: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: fanout-go ADDRESS NAMESPACE STREAM COUNT")
	}
	address, namespace, stream := os.Args[1], os.Args[2], os.Args[3]
	count, err := strconv.Atoi(os.Args[4])
	if err != nil {
		fail("count: %v", err)
	}
	// Fixed windows turn off grpc-go's BDP estimation, whose pings (one per
	// burst of DATA received) the server's ping policy answers with GOAWAY
	// too_many_pings under a fan-out to hundreds of streams.
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(1<<24))
	if err != nil {
		fail("connect: %v", err)
	}
	client := pb.NewEventServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	recv := make([]int64, 0, 2*60*count)
	var caught sync.WaitGroup
	caught.Add(count)
	stopping := false
	for i := 0; i < count; i++ {
		sub, err := client.Subscribe(ctx, &pb.SubscribeRequest{
			Namespace: namespace,
			Target:    &pb.SubscribeRequest_Stream{Stream: stream},
		})
		if err != nil {
			fail("subscribe: %v", err)
		}
		go func() {
			for {
				m, err := sub.Recv()
				if err != nil {
					mu.Lock()
					s := stopping
					mu.Unlock()
					if !s {
						fail("a Subscribe stream ended: %v", err)
					}
					return
				}
				if e := m.GetEvent(); e != nil {
					at := now()
					mu.Lock()
					recv = append(recv, e.GetPosition(), at)
					mu.Unlock()
				} else if m.GetCaughtUp() != nil {
					caught.Done()
				}
			}
		}()
	}
	caught.Wait()
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(map[string]any{"ready": true})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var m struct {
			Ping *int64 `json:"ping"`
			Stop bool   `json:"stop"`
		}
		if err := json.Unmarshal(in.Bytes(), &m); err != nil {
			fail("stdin: %v", err)
		}
		if m.Ping != nil {
			_ = out.Encode(map[string]any{"pong": *m.Ping, "at": now()})
		}
		if m.Stop {
			mu.Lock()
			stopping = true
			got := append([]int64(nil), recv...)
			mu.Unlock()
			cancel()
			_ = out.Encode(map[string]any{"recv": got})
			conn.Close()
			return
		}
	}
}
