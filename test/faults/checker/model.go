package main

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

type porcupineOperation = porcupine.Operation

// register is one key's state: absent, or present at a version with a value.
// Comparable, so porcupine's default equality works; Hash speeds up the cache.
type register struct {
	Exists  bool
	Version int64
	Value   string
}

func (r register) String() string {
	if !r.Exists {
		return "absent"
	}
	return fmt.Sprintf("v%d=%q", r.Version, r.Value)
}

// holds is the service's compare rule (src/domain/casRules.ts).
func holds(in kvInput, s register) bool {
	switch in.Expect {
	case expectAny:
		return true
	case expectAbsent:
		return !s.Exists
	default:
		return s.Exists && s.Version == in.ExpectVersion
	}
}

// itemMatches: a reply's (found, version, value) describes state s.
func itemMatches(out kvOutput, s register) bool {
	if out.Found != s.Exists {
		return false
	}
	return !s.Exists || (out.Version == s.Version && out.Value == s.Value)
}

// step is the sequential specification of one key.
func step(s register, in kvInput, out kvOutput) (bool, register) {
	switch in.Kind {
	case opGet:
		if out.Unknown {
			return true, s
		}
		return itemMatches(out, s), s

	case opCas:
		if !holds(in, s) {
			// Not applied: the reply carries the current item.
			if out.Unknown {
				return true, s
			}
			return !out.Applied && itemMatches(out, s), s
		}
		next := register{Exists: true, Version: 1, Value: in.Value}
		if s.Exists {
			next.Version = s.Version + 1
		}
		if out.Unknown {
			return true, next
		}
		// Applied: the reply carries the written item.
		return out.Applied && out.Found && out.Version == next.Version && out.Value == next.Value, next

	default: // opDelete
		if !holds(in, s) {
			if out.Unknown {
				return true, s
			}
			return !out.Applied && itemMatches(out, s), s
		}
		next := register{}
		if out.Unknown {
			return true, next
		}
		// Applied: the reply carries the deleted item (none when the key was absent).
		return out.Applied && itemMatches(out, s), next
	}
}

func describeInput(in kvInput) string {
	exp := "any"
	switch in.Expect {
	case expectAbsent:
		exp = "absent"
	case expectVersion:
		exp = fmt.Sprintf("v%d", in.ExpectVersion)
	}
	switch in.Kind {
	case opGet:
		return fmt.Sprintf("get(%s)", in.Key)
	case opCas:
		return fmt.Sprintf("cas(%s, %s, %q)", in.Key, exp, in.Value)
	default:
		return fmt.Sprintf("delete(%s, %s)", in.Key, exp)
	}
}

func describeOutput(out kvOutput) string {
	if out.Unknown {
		return "?? (" + out.Error + ")"
	}
	item := "absent"
	if out.Found {
		item = fmt.Sprintf("v%d=%q", out.Version, out.Value)
	}
	return fmt.Sprintf("applied=%v %s", out.Applied, item)
}

// keyModel checks one key's operations (no partitioning).
var keyModel = func() porcupine.Model {
	m := registerModel
	m.Partition = nil
	return m
}()

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return register{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return step(state.(register), input.(kvInput), output.(kvOutput))
	},
	Hash: func(state interface{}) uint64 {
		s := state.(register)
		h := fnv.New64a()
		fmt.Fprintf(h, "%v/%d/%s", s.Exists, s.Version, s.Value)
		return h.Sum64()
	},
	DescribeOperation: func(input, output interface{}) string {
		return describeInput(input.(kvInput)) + " -> " + describeOutput(output.(kvOutput))
	},
	DescribeState: func(state interface{}) string { return state.(register).String() },
}
