package agentstate_test

import (
	"context"
	"os"
	"testing"
	"time"

	agentstate "github.com/agentstate/agentstate/clients/go"
	pb "github.com/agentstate/agentstate/clients/go/gen/agentstate/v1"
)

// TestTLS runs against the mTLS server .ci/clients starts
// (AGENTSTATE_MTLS_ADDRESS, with the CA and a client certificate in
// AGENTSTATE_TLS_CA_FILE, AGENTSTATE_TLS_CLIENT_CERT_FILE and
// AGENTSTATE_TLS_CLIENT_KEY_FILE).
func TestTLS(t *testing.T) {
	addr := os.Getenv("AGENTSTATE_MTLS_ADDRESS")
	if addr == "" {
		t.Skip("AGENTSTATE_MTLS_ADDRESS is not set: this test needs a live mTLS agentstate server (see .ci/clients)")
	}
	ca := os.Getenv("AGENTSTATE_TLS_CA_FILE")
	call := func(cfgCert, cfgKey string) error {
		cfg, err := agentstate.TLSConfig(ca, cfgCert, cfgKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := agentstate.New(addr, &agentstate.Options{TLS: cfg, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.KV.Get(ctx, &pb.GetRequest{Namespace: namespace, Key: "tls"})
		return err
	}
	t.Run("with the CA and a client certificate", func(t *testing.T) {
		if err := call(os.Getenv("AGENTSTATE_TLS_CLIENT_CERT_FILE"), os.Getenv("AGENTSTATE_TLS_CLIENT_KEY_FILE")); err != nil {
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
