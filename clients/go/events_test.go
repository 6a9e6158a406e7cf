package agentstate_test

// Event helpers (AppendEvent, ReadStream, Subscribe) against the live server
// in AGENTSTATE_ADDRESS; see client_test.go.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	agentstate "github.com/agentstate/agentstate/clients/go"
	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func ev(typ, data string) *pb.EventData {
	return &pb.EventData{Type: typ, Data: []byte(data), Metadata: map[string]string{"by": "gotest"}}
}

func mustAppend(t *testing.T, c *agentstate.Client, stream string, expected *pb.ExpectedStream, events ...*pb.EventData) *agentstate.AppendResult {
	t.Helper()
	r, err := c.AppendEvent(ctx(t), namespace, stream, events, expected, nil)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return r
}

func readAll(t *testing.T, c *agentstate.Client, req *pb.ReadStreamRequest) []*pb.RecordedEvent {
	t.Helper()
	if req.Namespace == "" {
		req.Namespace = namespace
	}
	var out []*pb.RecordedEvent
	for e, err := range c.ReadStream(ctx(t), req) {
		if err != nil {
			t.Fatalf("read %s: %v", req.Stream, err)
		}
		out = append(out, e)
	}
	return out
}

func ids(events []*pb.RecordedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Id
	}
	return out
}

func versions(events []*pb.RecordedEvent) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.StreamVersion
	}
	return out
}

func assertIncreasing(t *testing.T, events []*pb.RecordedEvent) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if events[i].Position <= events[i-1].Position {
			t.Fatalf("position %d after %d", events[i].Position, events[i-1].Position)
		}
	}
}

func streamReq(stream string, after int64) *pb.SubscribeRequest {
	return &pb.SubscribeRequest{Namespace: namespace, Target: &pb.SubscribeRequest_Stream{Stream: stream}, AfterPosition: after}
}

var errEnough = errors.New("enough")

func TestAppendEventExpectedVersions(t *testing.T) {
	c := newClient(t, nil)
	first := mustAppend(t, c, "exp", agentstate.ExpectNoStream(), ev("a", "1"), ev("b", "2"))
	if !first.Applied || first.Replayed || first.FirstVersion != 1 || first.CurrentVersion != 2 || len(first.EventIDs) != 2 {
		t.Fatalf("first append: %+v", first)
	}
	for _, id := range first.EventIDs {
		if !uuidV4.MatchString(id) {
			t.Fatalf("generated id %q is not a UUIDv4", id)
		}
	}
	if first.Position <= 0 || first.Header.Revision < first.Position {
		t.Fatalf("position %d, revision %d", first.Position, first.Header.Revision)
	}
	// A mismatch is not an error: Applied=false with the current version.
	for _, exp := range []*pb.ExpectedStream{agentstate.ExpectNoStream(), agentstate.ExpectVersion(1)} {
		if r := mustAppend(t, c, "exp", exp, ev("c", "")); r.Applied || r.CurrentVersion != 2 {
			t.Fatalf("mismatch on %v: %+v", exp, r)
		}
	}
	if r := mustAppend(t, c, "exp", agentstate.ExpectVersion(2), ev("c", "3")); !r.Applied || r.FirstVersion != 3 || r.CurrentVersion != 3 {
		t.Fatalf("on version 2: %+v", r)
	}
	if r := mustAppend(t, c, "exp", agentstate.ExpectExists(), ev("d", "4")); !r.Applied || r.CurrentVersion != 4 {
		t.Fatalf("exists: %+v", r)
	}
	if r := mustAppend(t, c, "exp-none", agentstate.ExpectExists(), ev("d", "")); r.Applied || r.CurrentVersion != 0 {
		t.Fatalf("exists on no stream: %+v", r)
	}
	mine := ev("e", "5")
	if r := mustAppend(t, c, "exp", nil, mine); !r.Applied || r.FirstVersion != 5 || mine.Id != "" {
		t.Fatalf("nil (any): %+v; caller's event id %q", r, mine.Id)
	}
	read := readAll(t, c, &pb.ReadStreamRequest{Stream: "exp"})
	var got []string
	for _, e := range read {
		got = append(got, fmt.Sprintf("%d %s %s %s", e.StreamVersion, e.Type, e.Data, e.Metadata["by"]))
	}
	want := []string{"1 a 1 gotest", "2 b 2 gotest", "3 c 3 gotest", "4 d 4 gotest", "5 e 5 gotest"}
	if !slices.Equal(got, want) {
		t.Fatalf("read back %q, want %q", got, want)
	}
	if !slices.Equal(ids(read[:2]), first.EventIDs) {
		t.Fatalf("stored ids %q, sent %q", ids(read[:2]), first.EventIDs)
	}
	if _, err := c.AppendEvent(ctx(t), namespace, "exp", nil, nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no events: want INVALID_ARGUMENT, got %v", err)
	}
}

// The first attempt is appended but its reply is lost (UNAVAILABLE):
// AppendEvent retries with the same ids and gets the server's replay.
func TestAppendEventRetryResendsTheSameIDs(t *testing.T) {
	var mu sync.Mutex
	var sent [][]string
	var deadlines []bool
	dropFirst := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if r, ok := req.(*pb.AppendEventRequest); ok {
			mu.Lock()
			defer mu.Unlock()
			var s []string
			for _, e := range r.Events {
				s = append(s, e.Id)
			}
			sent = append(sent, s)
			_, hasDeadline := ctx.Deadline()
			deadlines = append(deadlines, hasDeadline)
			if len(sent) == 1 && err == nil {
				return status.Error(codes.Unavailable, "reply lost (test)")
			}
		}
		return err
	}
	c := newClient(t, &agentstate.Options{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(dropFirst)}})
	r, err := c.AppendEvent(context.Background(), namespace, "idem", []*pb.EventData{ev("paid", ""), ev("shipped", "")}, agentstate.ExpectNoStream(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 || !slices.Equal(sent[0], sent[1]) || !slices.Equal(sent[0], r.EventIDs) {
		t.Fatalf("attempts sent ids %q, result %q", sent, r.EventIDs)
	}
	if !deadlines[0] || !deadlines[1] {
		t.Fatalf("an attempt had no deadline: %v", deadlines)
	}
	if !r.Applied || !r.Replayed || r.FirstVersion != 1 || r.CurrentVersion != 2 {
		t.Fatalf("retry: %+v", r)
	}
	read := readAll(t, c, &pb.ReadStreamRequest{Stream: "idem"})
	if !slices.Equal(ids(read), r.EventIDs) || read[0].Position != r.Position {
		t.Fatalf("stored %q at %d, appended %q at %d", ids(read), read[0].Position, r.EventIDs, r.Position)
	}
	// The same ids sent again by the caller (e.g. after a restart): a replay too.
	var again []*pb.EventData
	for _, e := range read {
		again = append(again, &pb.EventData{Id: e.Id, Type: e.Type, Data: e.Data, Metadata: e.Metadata})
	}
	if rr := mustAppend(t, c, "idem", nil, again...); !rr.Applied || !rr.Replayed || rr.Position != r.Position {
		t.Fatalf("explicit re-send: %+v", rr)
	}
	// A new call is a new append, with new ids.
	if next := mustAppend(t, c, "idem", agentstate.ExpectVersion(2), ev("paid", "")); !next.Applied || next.Replayed || next.FirstVersion != 3 || slices.Contains(r.EventIDs, next.EventIDs[0]) {
		t.Fatalf("new append: %+v", next)
	}
	if n := len(readAll(t, c, &pb.ReadStreamRequest{Stream: "idem"})); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
}

func TestAppendEventFenced(t *testing.T) {
	c := newClient(t, nil)
	var old *agentstate.Held
	err := c.WithLock(ctx(t), namespace, "stream-lock", nil, func(ctx context.Context, h *agentstate.Held) error {
		old = h
		_, err := c.AppendEvent(ctx, namespace, "fenced", []*pb.EventData{ev("under-lock", "")}, nil, &agentstate.AppendOptions{Fence: h.Fence()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WithLock(ctx(t), namespace, "stream-lock", nil, func(context.Context, *agentstate.Held) error { return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = c.AppendEvent(ctx(t), namespace, "fenced", []*pb.EventData{ev("stale", "")}, nil, &agentstate.AppendOptions{Fence: old.Fence()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stale fence: want FAILED_PRECONDITION, got %v", err)
	}
}

func TestReadStreamBothDirections(t *testing.T) {
	c := newClient(t, nil)
	var events []*pb.EventData
	for i := 1; i <= 25; i++ {
		events = append(events, ev("n", fmt.Sprint(i)))
	}
	mustAppend(t, c, "read", agentstate.ExpectNoStream(), events...)
	all := readAll(t, c, &pb.ReadStreamRequest{Stream: "read"})
	for i, e := range all {
		if string(e.Data) != fmt.Sprint(i+1) || e.StreamVersion != int64(i+1) {
			t.Fatalf("event %d: %v", i, e)
		}
	}
	assertIncreasing(t, all)
	back := pb.Direction_DIRECTION_BACKWARDS
	cases := []struct {
		req  *pb.ReadStreamRequest
		want []int64
	}{
		{&pb.ReadStreamRequest{Direction: back}, []int64{25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{&pb.ReadStreamRequest{FromVersion: 20}, []int64{20, 21, 22, 23, 24, 25}},
		{&pb.ReadStreamRequest{FromVersion: 5, Limit: 3}, []int64{5, 6, 7}},
		{&pb.ReadStreamRequest{Direction: back, FromVersion: 5}, []int64{5, 4, 3, 2, 1}},
		{&pb.ReadStreamRequest{Direction: back, Limit: 2}, []int64{25, 24}},
	}
	for _, tc := range cases {
		tc.req.Stream = "read"
		if got := versions(readAll(t, c, tc.req)); !slices.Equal(got, tc.want) {
			t.Errorf("%v: versions %v, want %v", tc.req, got, tc.want)
		}
	}
	// Breaking out early cancels the call.
	n := 0
	for e, err := range c.ReadStream(ctx(t), &pb.ReadStreamRequest{Namespace: namespace, Stream: "read"}) {
		if err != nil || e.StreamVersion != int64(n+1) {
			t.Fatalf("early: %v %v", e, err)
		}
		if n++; n == 3 {
			break
		}
	}
	var last error
	for _, err := range c.ReadStream(ctx(t), &pb.ReadStreamRequest{Namespace: namespace, Stream: "read-none"}) {
		last = err
	}
	if status.Code(last) != codes.NotFound {
		t.Fatalf("no stream: want NOT_FOUND, got %v", last)
	}
}

func TestReadStreamHasADeadlineSubscribeNone(t *testing.T) {
	var mu sync.Mutex
	has := map[string]bool{}
	record := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		_, ok := ctx.Deadline()
		mu.Lock()
		has[method[strings.LastIndex(method, "/")+1:]] = ok
		mu.Unlock()
		return streamer(ctx, desc, cc, method, opts...)
	}
	c := newClient(t, &agentstate.Options{DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(record)}})
	mustAppend(t, c, "dl", nil, ev("x", ""))
	bg := context.Background()
	for _, err := range c.ReadStream(bg, &pb.ReadStreamRequest{Namespace: namespace, Stream: "dl"}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Subscribe(bg, streamReq("dl", 0), nil, func(m *pb.SubscribeResponse) error {
		if m.GetCaughtUp() != nil {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatal(err)
	}
	if !has["ReadStream"] || has["Subscribe"] {
		t.Fatalf("deadlines: %v (want ReadStream only)", has)
	}
}

// collector gathers what Subscribe delivers; stop(pred) ends it when pred holds.
type collector struct {
	mu     sync.Mutex
	events []*pb.RecordedEvent
	log    []string
}

func (k *collector) fn(stop func(k *collector) bool) func(*pb.SubscribeResponse) error {
	return func(m *pb.SubscribeResponse) error {
		k.mu.Lock()
		if e := m.GetEvent(); e != nil {
			k.events = append(k.events, e)
			k.log = append(k.log, fmt.Sprintf("e:%d", e.Position))
		} else {
			k.log = append(k.log, fmt.Sprintf("c:%d", m.GetCaughtUp().GetPosition()))
		}
		done := stop != nil && stop(k)
		k.mu.Unlock()
		if done {
			return errEnough
		}
		return nil
	}
}

func (k *collector) snapshot() ([]*pb.RecordedEvent, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.events), slices.Clone(k.log)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubscribeCatchUpThenCaughtUpThenLive(t *testing.T) {
	c := newClient(t, nil)
	a1 := mustAppend(t, c, "cart-1", agentstate.ExpectNoStream(), ev("item", ""), ev("item", ""), ev("item", ""))
	mustAppend(t, c, "other-1", nil, ev("not-under-the-prefix", ""))
	b1 := mustAppend(t, c, "cart-2", agentstate.ExpectNoStream(), ev("item", ""))
	before := append(slices.Clone(a1.EventIDs), b1.EventIDs...)

	reader := newClient(t, nil)
	subCtx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var k collector
	type result struct {
		pos int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		req := &pb.SubscribeRequest{Namespace: namespace, Target: &pb.SubscribeRequest_StreamPrefix{StreamPrefix: "cart-"}}
		pos, err := reader.Subscribe(subCtx, req, nil, k.fn(nil))
		done <- result{pos, err}
	}()
	waitFor(t, "caught up", func() bool { _, log := k.snapshot(); return slices.Contains(log, fmt.Sprintf("c:%d", b1.Position)) })
	events, log := k.snapshot()
	if !slices.Equal(ids(events), before) || len(log) != len(before)+1 || log[len(log)-1] != fmt.Sprintf("c:%d", b1.Position) {
		t.Fatalf("catch-up: %q (log %q), want %q then caught up", ids(events), log, before)
	}
	assertIncreasing(t, events)

	live := mustAppend(t, c, "cart-1", agentstate.ExpectVersion(3), ev("live", ""), ev("live", ""))
	mustAppend(t, c, "other-1", nil, ev("not-under-the-prefix", ""))
	live2 := mustAppend(t, c, "cart-3", agentstate.ExpectNoStream(), ev("live", ""))
	want := append(append(slices.Clone(before), live.EventIDs...), live2.EventIDs...)
	waitFor(t, "live events", func() bool { e, _ := k.snapshot(); return len(e) >= len(want) })
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) || res.pos != live2.Position {
		t.Fatalf("after cancel: position %d (want %d), err %v", res.pos, live2.Position, res.err)
	}
	events, log = k.snapshot()
	if !slices.Equal(ids(events), want) {
		t.Fatalf("delivered %q, want %q", ids(events), want)
	}
	if n := len(slices.DeleteFunc(log, func(s string) bool { return !strings.HasPrefix(s, "c:") })); n != 1 {
		t.Fatalf("%d caughtUp markers", n)
	}

	// A single stream from a position: only what follows it; fn's error ends it.
	var one collector
	pos, err := c.Subscribe(ctx(t), streamReq("cart-1", a1.Position+1), nil, one.fn(func(k *collector) bool {
		return strings.HasPrefix(k.log[len(k.log)-1], "c:")
	}))
	if !errors.Is(err, errEnough) || !slices.Equal(ids(one.events), []string{a1.EventIDs[2], live.EventIDs[0], live.EventIDs[1]}) || pos != live.Position+1 {
		t.Fatalf("single stream: %q, pos %d, err %v", ids(one.events), pos, err)
	}

	// An error no resubscription can fix is returned at once.
	bad := &pb.SubscribeRequest{Namespace: "Not A Namespace!", Target: &pb.SubscribeRequest_StreamPrefix{}}
	if _, err := c.Subscribe(ctx(t), bad, nil, one.fn(nil)); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad namespace: want INVALID_ARGUMENT, got %v", err)
	}
}

// Cancel, then subscribe again from the returned position while appends go on:
// together the two subscriptions saw the stream exactly.
func TestResubscribeFromTheLastPositionWhileAppendsGoOn(t *testing.T) {
	c := newClient(t, nil)
	const stream = "cont"
	var mu sync.Mutex
	var appended []string
	var lastPosition int64
	writerDone := make(chan error, 1)
	w := newClient(t, nil)
	go func() {
		for n := 0; n < 60; n++ {
			var batch []*pb.EventData
			for i := 0; i <= n%3; i++ {
				batch = append(batch, ev("tick", fmt.Sprintf("%d.%d", n, i)))
			}
			r, err := w.AppendEvent(context.Background(), namespace, stream, batch, nil, nil)
			if err != nil {
				writerDone <- err
				return
			}
			mu.Lock()
			appended = append(appended, r.EventIDs...)
			lastPosition = r.Position + int64(len(batch)) - 1
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
		writerDone <- nil
	}()

	var first collector
	pos, err := c.Subscribe(ctx(t), streamReq(stream, 0), nil, first.fn(func(k *collector) bool { return len(k.events) == 15 }))
	// fn refused the 15th event: the position is the 14th's, and the 15th comes again.
	if !errors.Is(err, errEnough) || pos != first.events[13].Position {
		t.Fatalf("first: pos %d, err %v", pos, err)
	}
	// Again from there, while the writer goes on; cancelled once it has seen the last append.
	subCtx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var second collector
	done := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(subCtx, streamReq(stream, pos), nil, second.fn(nil))
		done <- err
	}()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the last append", func() bool {
		e, _ := second.snapshot()
		return len(e) > 0 && e[len(e)-1].Position >= lastPosition
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("second: %v", err)
	}
	seen := append(first.events[:14], second.events...)
	assertIncreasing(t, seen)
	stored := readAll(t, c, &pb.ReadStreamRequest{Stream: stream})
	if !slices.Equal(ids(seen), ids(stored)) || !slices.Equal(ids(stored), appended) {
		t.Fatalf("subscriptions saw %d events, the stream has %d, %d were appended", len(seen), len(stored), len(appended))
	}
}

// breakSubscriptions breaks each of the first `breaks` Subscribe streams with
// `code` after `after` messages, as a lost connection or a server would, and
// records the AfterPosition of every Subscribe request.
type breakSubscriptions struct {
	code          codes.Code
	after, breaks int
	mu            sync.Mutex
	positions     []int64
}

func (b *breakSubscriptions) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || !strings.HasSuffix(method, "/Subscribe") {
		return cs, err
	}
	return &breakingStream{ClientStream: cs, b: b}, nil
}

type breakingStream struct {
	grpc.ClientStream
	b     *breakSubscriptions
	nth   int
	count int
}

func (s *breakingStream) SendMsg(m any) error {
	s.b.mu.Lock()
	s.b.positions = append(s.b.positions, m.(*pb.SubscribeRequest).AfterPosition)
	s.nth = len(s.b.positions)
	s.b.mu.Unlock()
	return s.ClientStream.SendMsg(m)
}

func (s *breakingStream) RecvMsg(m any) error {
	if s.nth <= s.b.breaks && s.count == s.b.after {
		return status.Error(s.b.code, "stream broken (test)")
	}
	s.count++
	return s.ClientStream.RecvMsg(m)
}

func TestSubscribeResumesAfterABrokenStream(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			stream := "broken-" + strings.ToLower(code.String())
			c := newClient(t, nil)
			var events []*pb.EventData
			for i := 0; i < 10; i++ {
				events = append(events, ev("n", fmt.Sprint(i)))
			}
			first := mustAppend(t, c, stream, agentstate.ExpectNoStream(), events...)
			b := &breakSubscriptions{code: code, after: 4, breaks: 2}
			sc := newClient(t, &agentstate.Options{DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(b.intercept)}})
			var infos []agentstate.ReconnectInfo
			opts := &agentstate.SubscribeOptions{
				Backoff:     agentstate.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
				OnReconnect: func(i agentstate.ReconnectInfo) { infos = append(infos, i) },
			}
			var k collector
			var live *agentstate.AppendResult
			_, err := sc.Subscribe(ctx(t), streamReq(stream, 0), opts, k.fn(func(k *collector) bool {
				if strings.HasPrefix(k.log[len(k.log)-1], "c:") {
					live = mustAppend(t, c, stream, agentstate.ExpectVersion(10), ev("live", ""))
				}
				return len(k.events) == 11
			}))
			if !errors.Is(err, errEnough) {
				t.Fatal(err)
			}
			want := append(slices.Clone(first.EventIDs), live.EventIDs...)
			if !slices.Equal(ids(k.events), want) {
				t.Fatalf("delivered %q, want %q", ids(k.events), want)
			}
			if len(infos) != 2 || status.Code(infos[0].Err) != code || status.Code(infos[1].Err) != code {
				t.Fatalf("reconnects: %+v", infos)
			}
			wantPositions := []int64{0, k.events[3].Position, k.events[7].Position}
			if !slices.Equal(b.positions, wantPositions) || infos[1].AfterPosition != wantPositions[2] {
				t.Fatalf("resubscribed after %v, want %v", b.positions, wantPositions)
			}
			if n := len(slices.DeleteFunc(slices.Clone(k.log), func(s string) bool { return !strings.HasPrefix(s, "c:") })); n != 1 {
				t.Fatalf("%d caughtUp markers: %q", n, k.log)
			}
		})
	}
}

func TestSubscribeGivesUpAfterMaxReconnects(t *testing.T) {
	b := &breakSubscriptions{code: codes.Unavailable, after: 0, breaks: 100}
	c := newClient(t, &agentstate.Options{DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(b.intercept)}})
	opts := &agentstate.SubscribeOptions{Backoff: agentstate.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}, MaxReconnects: 2}
	var k collector
	_, err := c.Subscribe(ctx(t), streamReq("never", 0), opts, k.fn(nil))
	if status.Code(err) != codes.Unavailable || len(b.positions) != 3 {
		t.Fatalf("want UNAVAILABLE after 3 connections, got %v after %d", err, len(b.positions))
	}
}
