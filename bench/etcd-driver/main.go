// Command etcd-driver is the closed-loop (or fixed-rate) load driver the
// agentstate benchmarks use where ghz cannot be used:
//
//   - etcd (no .proto files on disk): Range, Txn compare-and-put, and the
//     concurrency.Mutex lock+unlock, through go.etcd.io/etcd/client/v3;
//   - agentstate Lock+Unlock (ghz cannot feed Lock's lock_id into Unlock),
//     plus Get/CompareAndSet/Health so that agentstate and etcd can also be
//     compared with the very same client harness.
//
// agentstate calls go through grpc-go with hand-encoded protobuf
// (protowire), so this module needs no generated code.
//
// It prints one JSON object on stdout:
//
//	{"op":..., "concurrency":..., "count":..., "errors":..., "rps":..., "p50_ms":..., "p99_ms":..., ...}
//
// Latency is measured per call from its start (as ghz does). With -rps, a
// pacer hands out tickets at the given rate and -c workers take them (as
// ghz --rps does).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

type result struct {
	Target      string  `json:"target"`
	Op          string  `json:"op"`
	Concurrency int     `json:"concurrency"`
	TargetRPS   float64 `json:"target_rps,omitempty"`
	Count       int     `json:"count"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	DurationS   float64 `json:"duration_s"`
	RPS         float64 `json:"rps"`
	AvgMs       float64 `json:"avg_ms"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
}

// opFunc runs one operation for worker w, iteration n.
type opFunc func(ctx context.Context, w, n int) error

func main() {
	target := flag.String("target", "etcd", "etcd | agentstate")
	op := flag.String("op", "range", "etcd: range | txn | txn-hot | lock | put-setup; agentstate: lock-unlock | get | cas | cas-hot | health")
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "host:port of etcd's client URL or of the agentstate server")
	conc := flag.Int("c", 16, "concurrent workers")
	dur := flag.Duration("d", 3*time.Second, "duration")
	rps := flag.Float64("rps", 0, "fixed rate (0: closed loop, as fast as the workers go)")
	tag := flag.String("tag", fmt.Sprintf("t%d", time.Now().UnixNano()), "run tag mixed into key and lock names")
	valueBytes := flag.Int("value-bytes", 64, "value size for puts")
	namespace := flag.String("namespace", "bench", "agentstate namespace")
	key := flag.String("key", "", "key for range / get / hot writes (default per op)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-call timeout")
	flag.Parse()

	value := strings.Repeat("v", *valueBytes)
	var run opFunc
	var cleanup func()
	var err error
	switch *target {
	case "etcd":
		run, cleanup, err = etcdOp(*op, *endpoint, *conc, *tag, value, *key)
	case "agentstate":
		run, cleanup, err = agentstateOp(*op, *endpoint, *namespace, *tag, []byte(value), *key)
	default:
		err = fmt.Errorf("unknown -target %q", *target)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-driver:", err)
		os.Exit(2)
	}
	if cleanup != nil {
		defer cleanup()
	}
	if *op == "put-setup" {
		// One call, for setting up the key that "range" reads.
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if err := run(ctx, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "etcd-driver: setup:", err)
			os.Exit(1)
		}
		return
	}
	res := drive(run, *conc, *dur, *rps, *timeout)
	res.Target, res.Op = *target, *op
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func drive(run opFunc, conc int, dur time.Duration, rps float64, timeout time.Duration) result {
	var (
		mu       sync.Mutex
		lats     []time.Duration
		errCount int64
		firstErr atomic.Value
	)
	stop := make(chan struct{})
	var tickets chan struct{}
	start := time.Now()
	deadline := start.Add(dur)
	if rps > 0 {
		tickets = make(chan struct{}, conc)
		go pace(tickets, rps, start, stop)
	}
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for n := 0; ; n++ {
				if tickets != nil {
					select {
					case <-tickets:
					case <-stop:
						goto done
					}
				}
				if !time.Now().Before(deadline) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				t0 := time.Now()
				err := run(ctx, w, n)
				lat := time.Since(t0)
				cancel()
				if err != nil {
					if atomic.AddInt64(&errCount, 1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				local = append(local, lat)
			}
		done:
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}(w)
	}
	time.AfterFunc(dur, func() { close(stop) })
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	res := result{Concurrency: conc, TargetRPS: rps, Count: len(lats), Errors: int(errCount), DurationS: elapsed.Seconds()}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	if len(lats) > 0 {
		var sum time.Duration
		for _, l := range lats {
			sum += l
		}
		res.RPS = float64(len(lats)) / elapsed.Seconds()
		res.AvgMs = ms(sum / time.Duration(len(lats)))
		res.P50Ms = ms(pct(lats, 50))
		res.P90Ms = ms(pct(lats, 90))
		res.P99Ms = ms(pct(lats, 99))
		res.MaxMs = ms(lats[len(lats)-1])
	}
	return res
}

// pace hands out tickets at `rps` per second from `start` until stop closes.
func pace(tickets chan<- struct{}, rps float64, start time.Time, stop <-chan struct{}) {
	issued := 0
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			due := int(now.Sub(start).Seconds() * rps)
			for ; issued < due; issued++ {
				select {
				case tickets <- struct{}{}:
				case <-stop:
					return
				}
			}
		}
	}
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---------------------------------------------------------------- etcd

func etcdOp(op, endpoint string, conc int, tag, value, key string) (opFunc, func(), error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://" + endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, nil, err
	}
	closeAll := []func(){func() { _ = cli.Close() }}
	cleanup := func() {
		for i := len(closeAll) - 1; i >= 0; i-- {
			closeAll[i]()
		}
	}
	if key == "" {
		key = "/bench/range"
	}
	switch op {
	case "put-setup":
		return func(ctx context.Context, _, _ int) error {
			_, err := cli.Put(ctx, key, value)
			return err
		}, cleanup, nil
	case "range":
		// The default Get is linearizable (ReadIndex), as agentstate's default Get is.
		return func(ctx context.Context, _, _ int) error {
			r, err := cli.Get(ctx, key)
			if err == nil && len(r.Kvs) != 1 {
				err = errors.New("range: key not found (run put-setup first)")
			}
			return err
		}, cleanup, nil
	case "txn", "txn-hot":
		// Compare-and-put in one Txn: If(version > -1, always true, like
		// expected=any) Then(Put) Else(Get), on a new key per call (txn) or one key (txn-hot).
		hot := op == "txn-hot"
		return func(ctx context.Context, w, n int) error {
			k := "/bench/txn-hot"
			if !hot {
				k = fmt.Sprintf("/bench/txn/%s/%d/%d", tag, w, n)
			}
			r, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.Version(k), ">", -1)).
				Then(clientv3.OpPut(k, value)).
				Else(clientv3.OpGet(k)).
				Commit()
			if err == nil && !r.Succeeded {
				err = errors.New("txn: compare failed")
			}
			return err
		}, cleanup, nil
	case "lock":
		// concurrency.Mutex, the etcd client's lock recipe (etcdctl lock uses
		// it): one session (lease, kept alive) per worker, one uncontended
		// lock name per worker; each op is Lock then Unlock.
		mus := make([]*concurrency.Mutex, conc)
		for w := 0; w < conc; w++ {
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
			if err != nil {
				cleanup()
				return nil, nil, err
			}
			closeAll = append(closeAll, func() { _ = s.Close() })
			mus[w] = concurrency.NewMutex(s, fmt.Sprintf("/bench/lock/%s/%d", tag, w))
		}
		return func(ctx context.Context, w, _ int) error {
			m := mus[w]
			if err := m.Lock(ctx); err != nil {
				return err
			}
			return m.Unlock(ctx)
		}, cleanup, nil
	}
	cleanup()
	return nil, nil, fmt.Errorf("unknown etcd -op %q", op)
}
