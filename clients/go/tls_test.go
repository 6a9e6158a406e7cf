package agentstate_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	agentstate "github.com/agentstate/agentstate/clients/go"
	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestTLS runs against the mTLS + auth server .ci/clients starts
// (AGENTSTATE_MTLS_ADDRESS, with the CA and a client certificate in
// AGENTSTATE_TLS_CA_FILE, AGENTSTATE_TLS_CLIENT_CERT_FILE and
// AGENTSTATE_TLS_CLIENT_KEY_FILE, and an admin token in AGENTSTATE_MTLS_TOKEN).
func TestTLS(t *testing.T) {
	addr := os.Getenv("AGENTSTATE_MTLS_ADDRESS")
	if addr == "" {
		t.Skip("AGENTSTATE_MTLS_ADDRESS is not set: this test needs a live mTLS agentstate server (see .ci/clients)")
	}
	ca := os.Getenv("AGENTSTATE_TLS_CA_FILE")
	token := os.Getenv("AGENTSTATE_MTLS_TOKEN")
	callWith := func(cfgCert, cfgKey string, o agentstate.Options) error {
		cfg, err := agentstate.TLSConfig(ca, cfgCert, cfgKey)
		if err != nil {
			t.Fatal(err)
		}
		o.TLS, o.Timeout = cfg, 5*time.Second
		c, err := agentstate.New(addr, &o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.KV.Get(ctx, &pb.GetRequest{Namespace: namespace, Key: "tls"})
		return err
	}
	call := func(cfgCert, cfgKey string) error {
		return callWith(cfgCert, cfgKey, agentstate.Options{Token: token})
	}
	cert, key := os.Getenv("AGENTSTATE_TLS_CLIENT_CERT_FILE"), os.Getenv("AGENTSTATE_TLS_CLIENT_KEY_FILE")
	t.Run("auth: without a token UNAUTHENTICATED; a token source is asked on every call", func(t *testing.T) {
		if token == "" {
			t.Skip("AGENTSTATE_MTLS_TOKEN is not set")
		}
		if err := callWith(cert, key, agentstate.Options{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("without a token: %v", err)
		}
		asked := 0
		src := func(context.Context) (string, error) { asked++; return token, nil }
		if err := callWith(cert, key, agentstate.Options{TokenSource: src}); err != nil || asked != 1 {
			t.Fatalf("with a token source: %v (asked %d times)", err, asked)
		}
		failing := func(context.Context) (string, error) { return "", errors.New("no token today") }
		if err := callWith(cert, key, agentstate.Options{TokenSource: failing}); err == nil {
			t.Fatal("a failing token source still got an answer")
		}
	})
	t.Run("with the CA and a client certificate", func(t *testing.T) {
		if err := call(cert, key); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("without a client certificate the handshake fails", func(t *testing.T) {
		if err := call("", ""); err == nil {
			t.Fatal("a client without a certificate got an answer")
		}
	})
	t.Run("plaintext fails", func(t *testing.T) {
		c, err := agentstate.New(addr, &agentstate.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.KV.Get(ctx, &pb.GetRequest{Namespace: namespace, Key: "tls"}); err == nil {
			t.Fatal("a plaintext client got an answer")
		}
	})
}
