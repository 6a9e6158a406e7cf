package main

import (
	"encoding/json"
	"fmt"
	"math"
)

// historyFile is the JSON written by test/faults/kvHistory.ts:
//
//	{ "ops": [ {
//	    "client": 3,                      // worker id (for the visualization)
//	    "key": "k1",
//	    "kind": "get" | "cas" | "delete",
//	    "expect": "version" | "absent" | "any",   // cas/delete only
//	    "expectVersion": 4,               // when expect is "version"
//	    "value": "w3-17",                 // cas only: the value written (unique per write)
//	    "call": 1200, "return": 5300,     // nanoseconds on one monotonic clock
//	    "outcome": "ok" | "indeterminate" | "committed",
//	    "applied": true, "found": true, "version": 5, "outValue": "w3-17",  // when ok
//	    "error": "UNAVAILABLE: ..."      // when indeterminate (informational)
//	} ] }
//
// "committed" is a write whose call failed but whose transaction is known to
// have committed (the harness found its idempotency record or its unique value
// in the store afterwards): its output is given, its return time is unknown
// (infinite).
//
// Replies as the service gives them: Get answers found/version/value;
// CompareAndSet and Delete answer applied, found (whether an item is in the
// reply) and the item's version/value (the written item when a put applied,
// the deleted item when a delete applied, the current item when not applied).
type historyFile struct {
	Ops []historyOp `json:"ops"`
}

type historyOp struct {
	Client        int    `json:"client"`
	Key           string `json:"key"`
	Kind          string `json:"kind"`
	Expect        string `json:"expect"`
	ExpectVersion int64  `json:"expectVersion"`
	Value         string `json:"value"`
	Call          int64  `json:"call"`
	Return        int64  `json:"return"`
	Outcome       string `json:"outcome"`
	Applied       bool   `json:"applied"`
	Found         bool   `json:"found"`
	Version       int64  `json:"version"`
	OutValue      string `json:"outValue"`
	Error         string `json:"error"`
}

type opKind int

const (
	opGet opKind = iota
	opCas
	opDelete
)

type expectKind int

const (
	expectAny expectKind = iota
	expectAbsent
	expectVersion
)

// kvInput is what an operation asked for.
type kvInput struct {
	Key           string
	Kind          opKind
	Expect        expectKind
	ExpectVersion int64
	Value         string
}

// kvOutput is what it was answered; Unknown for an indeterminate operation.
type kvOutput struct {
	Unknown bool
	Applied bool
	Found   bool
	Version int64
	Value   string
	Error   string
}

type historyStats struct {
	keys, indeterminate, committed, gets, writes, appliedWrites int
}

func parseHistory(raw []byte) (*historyFile, error) {
	var h historyFile
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	for i, op := range h.Ops {
		switch op.Kind {
		case "get", "cas", "delete":
		default:
			return nil, fmt.Errorf("history: op %d: unknown kind %q", i, op.Kind)
		}
		if op.Kind != "get" {
			switch op.Expect {
			case "any", "absent", "version":
			default:
				return nil, fmt.Errorf("history: op %d: unknown expect %q", i, op.Expect)
			}
		}
		switch op.Outcome {
		case "ok", "indeterminate", "committed":
		default:
			return nil, fmt.Errorf("history: op %d: unknown outcome %q", i, op.Outcome)
		}
		if op.Outcome == "ok" && op.Return < op.Call {
			return nil, fmt.Errorf("history: op %d returns (%d) before it is called (%d)", i, op.Return, op.Call)
		}
	}
	return &h, nil
}

func (h *historyFile) operations() ([]porcupineOperation, historyStats) {
	ops := make([]porcupineOperation, 0, len(h.Ops))
	keys := map[string]bool{}
	var st historyStats
	for _, op := range h.Ops {
		keys[op.Key] = true
		in := kvInput{Key: op.Key, Value: op.Value, ExpectVersion: op.ExpectVersion}
		switch op.Kind {
		case "get":
			in.Kind = opGet
			st.gets++
		case "cas":
			in.Kind = opCas
			st.writes++
		case "delete":
			in.Kind = opDelete
			st.writes++
		}
		switch op.Expect {
		case "absent":
			in.Expect = expectAbsent
		case "version":
			in.Expect = expectVersion
		default:
			in.Expect = expectAny
		}
		out := kvOutput{Applied: op.Applied, Found: op.Found, Version: op.Version, Value: op.OutValue}
		ret := op.Return
		switch {
		case op.Outcome == "indeterminate":
			out = kvOutput{Unknown: true, Error: op.Error}
			ret = math.MaxInt64
			st.indeterminate++
		case op.Outcome == "committed":
			// Known to have taken effect (found in the store's log), reply never seen:
			// the output is known, the return time is not.
			ret = math.MaxInt64
			st.committed++
			if op.Applied {
				st.appliedWrites++
			}
		case in.Kind != opGet && op.Applied:
			st.appliedWrites++
		}
		ops = append(ops, porcupineOperation{ClientId: op.Client, Input: in, Call: op.Call, Output: out, Return: ret})
	}
	st.keys = len(keys)
	return ops, st
}
