// Package agentstate is the Go client of agentstate, the gRPC state service
// for AI agents: versioned keys with compare-and-set, distributed locks with
// fencing tokens, and event streams.
//
// The generated code lives in ./gen/agentstate/v1 (package agentstatev1,
// produced from proto/ by scripts/gen-clients.sh). Client wraps it with what
// every caller needs and is easy to get wrong:
//
//   - every call has a deadline (the context's, or the client's default);
//   - the gRPC message limit matches the server's default, so a value the
//     server accepts is never refused by the transport on either side;
//   - Update: a compare-and-set retry loop that never loses an update;
//   - WithLock: acquire, renew in the background, hand out the fencing token,
//     release; the callback's context is cancelled if the lock is lost;
//   - Put: one idempotency key per logical write, reused across its retries,
//     so a write retried after a timeout takes effect once;
//   - AppendEvent: event ids generated once per call and re-sent on retries,
//     so a retried append takes effect once (the server replays it);
//   - ReadStream: an iterator over a stream's events;
//   - Subscribe: a subscription that resumes from its last position when the
//     stream breaks, without gaps or duplicates, until its context ends.
//
// Errors are gRPC status errors as received (status.Code(err),
// status.Convert(err).Details()); INVALID_ARGUMENT names the field in its
// message and in the "agentstate-field" trailer. A compare-and-set mismatch is
// not an error: the reply says Applied=false and carries the current item.
package agentstate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultMaxMessageBytes is the server's default gRPC message limit: the larger
// of the value limit (1 MiB) and the append-batch limit (4 MiB), plus 64 KiB of
// envelope.
const DefaultMaxMessageBytes = 4*1024*1024 + 64*1024

// DefaultTimeout bounds every call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Options configure a Client. The zero value is ready to use: plaintext,
// DefaultTimeout, DefaultMaxMessageBytes.
type Options struct {
	// Timeout is the deadline of each call whose context has none. A context
	// deadline always wins. Default DefaultTimeout.
	Timeout time.Duration
	// MaxMessageBytes is the send and receive limit; set it to the server's
	// limit when the server's limits are raised. Default DefaultMaxMessageBytes.
	MaxMessageBytes int
	// TLS, when set, connects with TLS (see TLSConfig); nil means plaintext.
	TLS *tls.Config
	// Token is a bearer token (an API token or a JWT) sent as
	// "authorization: Bearer ..." on every call, for a server with
	// AGENTSTATE_AUTH=required.
	Token string
	// TokenSource, when set, is asked for the current token before every call
	// (refreshable JWTs: it caches and refreshes on its own); it wins over
	// Token. An error fails the call before anything is sent.
	TokenSource func(ctx context.Context) (string, error)
	// DialOptions are appended to the client's own (transport and message
	// limits), e.g. interceptors.
	DialOptions []grpc.DialOption
}

// bearer sends a token on every call. It does not require transport
// security, so a client on loopback without TLS can send one too.
type bearer func(ctx context.Context) (string, error)

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	t, err := b(ctx)
	if err != nil {
		return nil, fmt.Errorf("agentstate: token source: %w", err)
	}
	return map[string]string{"authorization": "Bearer " + t}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// TLSConfig builds a TLS configuration from PEM files: caFile is the CA that
// signed the server's certificate ("" trusts the system's CAs); certFile and
// keyFile are the client certificate for a server that requires mTLS (both
// "" for none).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("agentstate: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agentstate: CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("agentstate: the client certificate and key go together")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("agentstate: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Client talks to one agentstate endpoint (one address, or any target
// grpc.NewClient accepts, e.g. "dns:///agentstate:50051" behind a balancer).
// It is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	timeout time.Duration

	// KV, Locks and Events are the generated clients over the same
	// connection, for anything the wrappers below do not cover. Their calls
	// get no default deadline: pass a context with one.
	KV     pb.KeyValueServiceClient
	Locks  pb.LockServiceClient
	Events pb.EventServiceClient
}

// New creates a Client for target. It does not connect until the first call.
func New(target string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	transport := insecure.NewCredentials()
	if o.TLS != nil {
		transport = credentials.NewTLS(o.TLS)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(o.MaxMessageBytes),
			grpc.MaxCallSendMsgSize(o.MaxMessageBytes),
		),
	}
	if o.TokenSource != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(o.TokenSource)))
	} else if o.Token != "" {
		token := o.Token
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(func(context.Context) (string, error) { return token, nil })))
	}
	dial = append(dial, o.DialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:    conn,
		timeout: o.Timeout,
		KV:      pb.NewKeyValueServiceClient(conn),
		Locks:   pb.NewLockServiceClient(conn),
		Events:  pb.NewEventServiceClient(conn),
	}, nil
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// callContext gives a call the client's default deadline (plus extra, for
// calls that wait on purpose) unless ctx already has one.
func (c *Client) callContext(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout+extra)
}

// Get reads one key. A missing or expired key answers Found=false.
func (c *Client) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	ctx, cancel := c.callContext(ctx, 0)
	defer cancel()
	return c.KV.Get(ctx, req)
}

// CompareAndSet writes a key if req.Expected holds; a mismatch answers
// Applied=false with the current item.
func (c *Client) CompareAndSet(ctx context.Context, req *pb.CompareAndSetRequest) (*pb.CompareAndSetResponse, error) {
	ctx, cancel := c.callContext(ctx, 0)
	defer cancel()
	return c.KV.CompareAndSet(ctx, req)
}

// Delete removes a key if req.Expected holds, with the same compare semantics.
func (c *Client) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	ctx, cancel := c.callContext(ctx, 0)
	defer cancel()
	return c.KV.Delete(ctx, req)
}

// List returns one page of keys under a prefix, in byte order; pass
// NextPageToken back as PageToken for the next page.
func (c *Client) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	ctx, cancel := c.callContext(ctx, 0)
	defer cancel()
	return c.KV.List(ctx, req)
}

// Lock tries to acquire a lock, waiting up to req.Wait. Not acquired in time
// is not an error: Acquired=false with the holder's owner when known. Without
// a context deadline the call may last req.Wait plus the default timeout.
func (c *Client) Lock(ctx context.Context, req *pb.LockRequest) (*pb.LockResponse, error) {
	ctx, cancel := c.callContext(ctx, req.GetWait().AsDuration())
	defer cancel()
	return c.Locks.Lock(ctx, req)
}

// Unlock releases a lock held under req.LockId. A lock not held (expired,
// released, taken over) answers FAILED_PRECONDITION, reason LOCK_NOT_HELD.
func (c *Client) Unlock(ctx context.Context, req *pb.UnlockRequest) (*pb.UnlockResponse, error) {
	ctx, cancel := c.callContext(ctx, 0)
	defer cancel()
	return c.Locks.Unlock(ctx, req)
}

// RenewLock extends a lock held under req.LockId to req.Ttl from now.
func (c *Client) RenewLock(ctx context.Context, req *pb.RenewLockRequest) (*pb.RenewLockResponse, error) {
	ctx, cancel := c.callContext(ctx, 0)
	defer cancel()
	return c.Locks.RenewLock(ctx, req)
}
