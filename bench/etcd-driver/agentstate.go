package main

// agentstate calls with hand-encoded protobuf (field numbers from
// proto/agentstate/v1/*.proto), sent through grpc-go with a pass-through codec.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives already-encoded protobuf bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func str(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func byts(b []byte, field protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func varint(b []byte, field protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// duration encodes a google.protobuf.Duration.
func duration(d time.Duration) []byte {
	var b []byte
	if s := int64(d / time.Second); s != 0 {
		b = varint(b, 1, uint64(s))
	}
	if n := int64(d % time.Second); n != 0 {
		b = varint(b, 2, uint64(n))
	}
	return b
}

// fields decodes the top-level varint and bytes fields of a message.
func fields(msg []byte) (map[protowire.Number]uint64, map[protowire.Number][]byte, error) {
	ints := map[protowire.Number]uint64{}
	bs := map[protowire.Number][]byte{}
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(msg)
			if m < 0 {
				return nil, nil, protowire.ParseError(m)
			}
			ints[num] = v
			msg = msg[m:]
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(msg)
			if m < 0 {
				return nil, nil, protowire.ParseError(m)
			}
			bs[num] = v
			msg = msg[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, msg)
			if m < 0 {
				return nil, nil, protowire.ParseError(m)
			}
			msg = msg[m:]
		}
	}
	return ints, bs, nil
}

func agentstateOp(op, endpoint, ns, tag string, value []byte, key string) (opFunc, func(), error) {
	conn, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = conn.Close() }
	call := func(ctx context.Context, method string, req []byte) ([]byte, error) {
		var resp []byte
		err := conn.Invoke(ctx, method, &req, &resp)
		return resp, err
	}
	expectedAny := varint(nil, 3, 1) // Expected{any: true}
	switch op {
	case "health":
		return func(ctx context.Context, _, _ int) error {
			resp, err := call(ctx, "/grpc.health.v1.Health/Check", []byte{})
			if err != nil {
				return err
			}
			ints, _, err := fields(resp)
			if err == nil && ints[1] != 1 {
				err = fmt.Errorf("health: status %d, want SERVING", ints[1])
			}
			return err
		}, cleanup, nil
	case "get":
		if key == "" {
			key = "get/hit"
		}
		req := str(str(nil, 1, ns), 2, key)
		return func(ctx context.Context, _, _ int) error {
			resp, err := call(ctx, "/agentstate.v1.KeyValueService/Get", req)
			if err != nil {
				return err
			}
			ints, _, err := fields(resp)
			if err == nil && ints[2] != 1 {
				err = errors.New("get: found=false (key not set up)")
			}
			return err
		}, cleanup, nil
	case "cas", "cas-hot":
		hot := op == "cas-hot"
		if key == "" {
			key = "cas/hot"
		}
		return func(ctx context.Context, w, n int) error {
			k := key
			if !hot {
				k = fmt.Sprintf("casgo/%s/%d/%d", tag, w, n)
			}
			req := byts(byts(str(str(nil, 1, ns), 2, k), 3, expectedAny), 4, value)
			resp, err := call(ctx, "/agentstate.v1.KeyValueService/CompareAndSet", req)
			if err != nil {
				return err
			}
			ints, _, err := fields(resp)
			if err == nil && ints[2] != 1 {
				err = errors.New("cas: applied=false")
			}
			return err
		}, cleanup, nil
	case "lock-unlock":
		// One uncontended lock name per worker (as the etcd "lock" op); each op
		// is Lock(ttl 10s, no wait) then Unlock with the returned lock_id.
		ttl := duration(10 * time.Second)
		return func(ctx context.Context, w, _ int) error {
			name := fmt.Sprintf("lu/%s/%d", tag, w)
			req := str(byts(str(str(nil, 1, ns), 2, name), 3, ttl), 5, "bench")
			resp, err := call(ctx, "/agentstate.v1.LockService/Lock", req)
			if err != nil {
				return err
			}
			ints, bs, err := fields(resp)
			if err != nil {
				return err
			}
			if ints[2] != 1 {
				return errors.New("lock: acquired=false")
			}
			ureq := str(str(str(nil, 1, ns), 2, name), 3, string(bs[3]))
			resp, err = call(ctx, "/agentstate.v1.LockService/Unlock", ureq)
			if err != nil {
				return err
			}
			ints, _, err = fields(resp)
			if err == nil && ints[2] != 1 {
				err = errors.New("unlock: released=false")
			}
			return err
		}, cleanup, nil
	}
	cleanup()
	return nil, nil, fmt.Errorf("unknown agentstate -op %q", op)
}
