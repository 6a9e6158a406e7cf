package agentstate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ExpectAny is the append condition that always holds.
func ExpectAny() *pb.ExpectedStream {
	return &pb.ExpectedStream{Condition: &pb.ExpectedStream_Any{Any: true}}
}

// ExpectNoStream requires the stream to have no events yet.
func ExpectNoStream() *pb.ExpectedStream {
	return &pb.ExpectedStream{Condition: &pb.ExpectedStream_NoStream{NoStream: true}}
}

// ExpectExists requires the stream to have at least one event.
func ExpectExists() *pb.ExpectedStream {
	return &pb.ExpectedStream{Condition: &pb.ExpectedStream_Exists{Exists: true}}
}

// ExpectVersion requires the stream's last version to be exactly v (>= 1).
func ExpectVersion(v int64) *pb.ExpectedStream {
	return &pb.ExpectedStream{Condition: &pb.ExpectedStream_Version{Version: v}}
}

// NewEventID returns a random UUID (version 4) for an event id.
func NewEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// AppendOptions shape one AppendEvent. The zero value appends unfenced with 3
// retries.
type AppendOptions struct {
	// Fence ties the append to a lock acquisition (see Held.Fence).
	Fence *pb.Fence
	// Retries after UNAVAILABLE or DEADLINE_EXCEEDED, with the same event ids;
	// 0 means 3, negative none.
	Retries int
	// Backoff between retries; default 100 ms doubling up to 2 s.
	Backoff Backoff
}

// AppendResult is the server's reply to an append plus the ids the events
// were sent with, in order (generated ones included).
type AppendResult struct {
	*pb.AppendEventResponse
	EventIDs []string
}

// AppendEvent appends events to a stream atomically if expected holds (nil
// means any; see ExpectNoStream, ExpectExists, ExpectVersion). A mismatch is
// not an error: Applied=false with the stream's CurrentVersion.
//
// Each event without an id gets a UUIDv4 here, once per call (the caller's
// events are not modified), and the very same request is retried after
// UNAVAILABLE or DEADLINE_EXCEEDED, each attempt with its own deadline. The
// server appends an id at most once, so an append whose reply was lost is
// replayed (Replayed=true, the original positions) instead of written twice.
func (c *Client) AppendEvent(ctx context.Context, namespace, stream string, events []*pb.EventData, expected *pb.ExpectedStream, opts *AppendOptions) (*AppendResult, error) {
	var o AppendOptions
	if opts != nil {
		o = *opts
	}
	if expected == nil {
		expected = ExpectAny()
	}
	sent := make([]*pb.EventData, len(events))
	ids := make([]string, len(events))
	for i, e := range events {
		id := e.GetId()
		if id == "" {
			id = NewEventID()
		}
		sent[i] = &pb.EventData{Id: id, Type: e.GetType(), Data: e.GetData(), Metadata: e.GetMetadata()}
		ids[i] = id
	}
	req := &pb.AppendEventRequest{Namespace: namespace, Stream: stream, Expected: expected, Events: sent, Fence: o.Fence}
	retries := o.Retries
	if retries == 0 {
		retries = 3
	}
	res, err := retryTransient(ctx, c, max(retries, 0), o.Backoff.withDefaults(100*time.Millisecond, 2*time.Second),
		func(ctx context.Context) (*pb.AppendEventResponse, error) { return c.Events.AppendEvent(ctx, req) })
	if err != nil {
		return nil, err
	}
	return &AppendResult{AppendEventResponse: res, EventIDs: ids}, nil
}

// ReadStream reads a stream's events: req.Direction (forwards by default, or
// DIRECTION_BACKWARDS), from req.FromVersion (inclusive; 0: the start, or the
// end backwards), at most req.Limit (0: all). The call starts when the
// iteration does and has one deadline for the whole read (ctx's, or the
// client's default). A failure is yielded once, as the last pair; a stream
// without events fails with NOT_FOUND. Breaking out of the loop cancels the
// call. The server waits for the reader; one that stops for longer than the
// server's stall limit gets RESOURCE_EXHAUSTED.
//
//	for e, err := range c.ReadStream(ctx, &pb.ReadStreamRequest{Namespace: "demo", Stream: "cart-42"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(e.StreamVersion, e.Type)
//	}
func (c *Client) ReadStream(ctx context.Context, req *pb.ReadStreamRequest) iter.Seq2[*pb.RecordedEvent, error] {
	return func(yield func(*pb.RecordedEvent, error) bool) {
		ctx, cancel := c.callContext(ctx, 0)
		defer cancel()
		stream, err := c.Events.ReadStream(ctx, req)
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			res, err := stream.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(res.GetEvent(), nil) {
				return
			}
		}
	}
}

// SubscribeOptions shape a Subscribe. The zero value resubscribes forever
// with a backoff of 100 ms doubling up to 5 s.
type SubscribeOptions struct {
	// Backoff between reconnections, reset once a connection delivers a message.
	Backoff Backoff
	// MaxReconnects bounds consecutive failed connections before the last
	// error is returned; 0 means unlimited.
	MaxReconnects int
	// OnReconnect, if set, is told before every reconnection (logging, metrics).
	OnReconnect func(ReconnectInfo)
}

// ReconnectInfo says why and from where Subscribe subscribes again.
type ReconnectInfo struct {
	// Err broke the stream; nil when the server ended it without an error.
	Err error
	// Attempt counts consecutive failed connections (1 after the first).
	Attempt int
	// AfterPosition is where the next connection resumes.
	AfterPosition int64
	// Delay is the backoff before that connection.
	Delay time.Duration
}

// IsResumable reports whether a subscription broken by err resumes from its
// last position instead of failing: UNAVAILABLE (server shutting down,
// connection lost), RESOURCE_EXHAUSTED (the consumer stalled longer than the
// server allows) or DEADLINE_EXCEEDED.
func IsResumable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
		return true
	default:
		return false
	}
}

// Subscribe delivers to fn the events of one stream (req.Target
// SubscribeRequest_Stream) or of every stream under a prefix
// (SubscribeRequest_StreamPrefix) with a position above req.AfterPosition:
// the catch-up, one message with CaughtUp set (everything up to its Position
// has been delivered; delivery is live from then on), then live events, in
// position order. It blocks until ctx is done, fn returns an error, or the
// subscription fails for good, and returns the position of the last event fn
// accepted (the resume point: pass it back as AfterPosition later) with
// context.Cause(ctx), fn's error, or the failure.
//
// When the stream breaks (UNAVAILABLE: server shutdown or connection lost;
// RESOURCE_EXHAUSTED: fn was slower than the server's stall limit;
// DEADLINE_EXCEEDED; or a stream ended by the server) Subscribe subscribes
// again after the last position, after a jittered backoff. Positions are the
// namespace's revisions, in its commit order (a subscription is within one
// namespace), so nothing is skipped; events at or below
// that position are dropped, so fn never sees one twice. Each connection
// sends its own CaughtUp once it has caught up. The call has no deadline
// of its own (a deadline on ctx ends the subscription). fn runs on the
// calling goroutine, one message at a time. Cancel ctx before closing the
// Client: a closed Client ends the subscription with CANCELLED.
func (c *Client) Subscribe(ctx context.Context, req *pb.SubscribeRequest, opts *SubscribeOptions, fn func(*pb.SubscribeResponse) error) (int64, error) {
	var o SubscribeOptions
	if opts != nil {
		o = *opts
	}
	backoff := o.Backoff.withDefaults(100*time.Millisecond, 5*time.Second)
	position := req.GetAfterPosition()
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return position, context.Cause(ctx)
		}
		r := proto.Clone(req).(*pb.SubscribeRequest)
		r.AfterPosition = position
		err := func() error {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := c.Events.Subscribe(sctx, r)
			if err != nil {
				return err
			}
			for {
				msg, err := stream.Recv()
				if err != nil {
					return err
				}
				failures = 0
				if e := msg.GetEvent(); e != nil {
					// At or below the resume point: already delivered (never twice).
					if e.GetPosition() <= position {
						continue
					}
					if err := fn(msg); err != nil {
						return &callbackError{err}
					}
					position = e.GetPosition()
				} else if err := fn(msg); err != nil {
					return &callbackError{err}
				}
			}
		}()
		var cbErr *callbackError
		if errors.As(err, &cbErr) {
			return position, cbErr.err
		}
		if ctx.Err() != nil {
			return position, context.Cause(ctx)
		}
		if err == io.EOF {
			err = nil // ended by the server without an error: resubscribe
		} else if !IsResumable(err) {
			return position, err
		}
		failures++
		if o.MaxReconnects > 0 && failures > o.MaxReconnects {
			if err == nil {
				err = errors.New("agentstate: subscription ended by the server")
			}
			return position, err
		}
		delay := backoff.delay(failures)
		if o.OnReconnect != nil {
			o.OnReconnect(ReconnectInfo{Err: err, Attempt: failures, AfterPosition: position, Delay: delay})
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return position, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// callbackError carries fn's error out of a connection, so it is returned
// as-is and never taken for a transport failure.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
