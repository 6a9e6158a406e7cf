// Command checker checks a history of agentstate KeyValueService operations
// (Get, CompareAndSet, Delete) for linearizability with Porcupine.
//
// Usage:
//
//	checker -history history.json [-timeout 120s] [-vis out.html]
//
// The history is the JSON written by test/faults (see history.go for the
// format). The model is one register per key: absent, or present with a
// version and a value. CompareAndSet and Delete take an expectation (a
// version N, absent, or any); versions start at 1 on create, +1 per change,
// and restart at 1 after a delete. Replies are checked in full: the applied
// flag, whether the key was found, the returned version and value.
//
// An operation that failed with UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED or
// INTERNAL is indeterminate: its effect may or may not have happened. It is
// given an infinite return time and a model step that accepts any reply, so
// Porcupine may place it anywhere after its invocation, including after
// everything else (which is the same as never having happened).
//
// Prints one JSON object with the result and exits 0 when linearizable,
// 1 when not, 2 when the check timed out (unknown), 3 on bad input.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

type keyResult struct {
	Key        string `json:"key"`
	Operations int    `json:"operations"`
	Result     string `json:"result"`
	DurationMs int64  `json:"durationMs"`
}

type result struct {
	Result        string      `json:"result"`
	Linearizable  bool        `json:"linearizable"`
	Operations    int         `json:"operations"`
	Keys          int         `json:"keys"`
	Indeterminate int         `json:"indeterminate"`
	Committed     int         `json:"committed"`
	PerKey        []keyResult `json:"perKey"`
	Gets          int         `json:"gets"`
	Writes        int         `json:"writes"`
	AppliedWrites int         `json:"appliedWrites"`
	DurationMs    int64       `json:"durationMs"`
	Visualization string      `json:"visualization,omitempty"`
	Error         string      `json:"error,omitempty"`
}

// worse orders results Ok < Unknown < Illegal.
func worse(a, b porcupine.CheckResult) porcupine.CheckResult {
	rank := map[porcupine.CheckResult]int{porcupine.Ok: 0, porcupine.Unknown: 1, porcupine.Illegal: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func main() {
	historyPath := flag.String("history", "", "history JSON file")
	timeout := flag.Duration("timeout", 120*time.Second, "give up (result Unknown) after this long; 0: no limit")
	visPath := flag.String("vis", "", "write a Porcupine visualization (HTML) here when the history is not linearizable")
	flag.Parse()

	out := result{}
	emit := func(code int) {
		enc := json.NewEncoder(os.Stdout)
		_ = enc.Encode(out)
		os.Exit(code)
	}
	if *historyPath == "" {
		out.Result, out.Error = "Error", "-history is required"
		emit(3)
	}
	raw, err := os.ReadFile(*historyPath)
	if err != nil {
		out.Result, out.Error = "Error", err.Error()
		emit(3)
	}
	h, err := parseHistory(raw)
	if err != nil {
		out.Result, out.Error = "Error", err.Error()
		emit(3)
	}
	ops, stats := h.operations()
	out.Operations = len(ops)
	out.Keys = stats.keys
	out.Indeterminate = stats.indeterminate
	out.Committed = stats.committed
	out.Gets = stats.gets
	out.Writes = stats.writes
	out.AppliedWrites = stats.appliedWrites

	// Keys are independent registers: check them one at a time (Porcupine
	// would check partitions in parallel), which bounds memory to one key's
	// search, and report each.
	started := time.Now()
	res := porcupine.Ok
	for _, part := range registerModel.Partition(ops) {
		key := part[0].Input.(kvInput).Key
		budget := time.Duration(0)
		if *timeout > 0 {
			budget = *timeout - time.Since(started)
			if budget <= 0 {
				out.PerKey = append(out.PerKey, keyResult{Key: key, Operations: len(part), Result: string(porcupine.Unknown)})
				res = worse(res, porcupine.Unknown)
				continue
			}
		}
		t := time.Now()
		r, info := porcupine.CheckOperationsVerbose(keyModel, part, budget)
		out.PerKey = append(out.PerKey, keyResult{Key: key, Operations: len(part), Result: string(r), DurationMs: time.Since(t).Milliseconds()})
		if r == porcupine.Illegal && out.Visualization == "" && *visPath != "" {
			if err := porcupine.VisualizePath(keyModel, info, *visPath); err == nil {
				out.Visualization = *visPath
			} else {
				out.Error = fmt.Sprintf("visualization failed: %v", err)
			}
		}
		res = worse(res, r)
	}
	out.DurationMs = time.Since(started).Milliseconds()
	out.Result = string(res)
	out.Linearizable = res == porcupine.Ok
	switch res {
	case porcupine.Ok:
		emit(0)
	case porcupine.Illegal:
		emit(1)
	default:
		emit(2)
	}
}
