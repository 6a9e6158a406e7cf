package main

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in kvInput, out kvOutput) porcupine.Operation {
	if out.Unknown {
		ret = math.MaxInt64
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func get(k string) kvInput { return kvInput{Key: k, Kind: opGet} }
func cas(k string, e expectKind, v int64, val string) kvInput {
	return kvInput{Key: k, Kind: opCas, Expect: e, ExpectVersion: v, Value: val}
}
func del(k string, e expectKind, v int64) kvInput {
	return kvInput{Key: k, Kind: opDelete, Expect: e, ExpectVersion: v}
}
func found(v int64, val string) kvOutput { return kvOutput{Found: true, Version: v, Value: val} }
func applied(v int64, val string) kvOutput {
	return kvOutput{Applied: true, Found: true, Version: v, Value: val}
}

var absent = kvOutput{}
var unknown = kvOutput{Unknown: true, Error: "UNAVAILABLE"}

func check(t *testing.T, want porcupine.CheckResult, ops ...porcupine.Operation) {
	t.Helper()
	if got := porcupine.CheckOperationsTimeout(registerModel, ops, 0); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestSequentialCreateUpdateDeleteRecreate(t *testing.T) {
	check(t, porcupine.Ok,
		op(0, 0, 1, get("k"), absent),
		op(0, 2, 3, cas("k", expectAbsent, 0, "a"), applied(1, "a")),
		op(0, 4, 5, cas("k", expectVersion, 1, "b"), applied(2, "b")),
		op(0, 6, 7, cas("k", expectVersion, 1, "c"), found(2, "b")), // stale version: not applied
		op(0, 8, 9, cas("k", expectAbsent, 0, "d"), found(2, "b")),
		op(0, 10, 11, del("k", expectVersion, 2), kvOutput{Applied: true, Found: true, Version: 2, Value: "b"}),
		op(0, 12, 13, del("k", expectAny, 0), kvOutput{Applied: true}), // absent: no-op, applied
		op(0, 14, 15, del("k", expectVersion, 1), absent),              // absent: not applied
		op(0, 16, 17, cas("k", expectAny, 0, "e"), applied(1, "e")),    // versions restart at 1
		op(0, 18, 19, get("k"), found(1, "e")),
	)
}

func TestStaleReadIsIllegal(t *testing.T) {
	check(t, porcupine.Illegal,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(0, 2, 3, cas("k", expectAny, 0, "b"), applied(2, "b")),
		op(1, 4, 5, get("k"), found(1, "a")),
	)
}

func TestConcurrentReadMaySeeEither(t *testing.T) {
	check(t, porcupine.Ok,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(0, 2, 10, cas("k", expectAny, 0, "b"), applied(2, "b")),
		op(1, 3, 4, get("k"), found(1, "a")),
		op(2, 5, 6, get("k"), found(2, "b")),
	)
}

func TestReadGoingBackwardsIsIllegal(t *testing.T) {
	check(t, porcupine.Illegal,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(0, 2, 10, cas("k", expectAny, 0, "b"), applied(2, "b")),
		op(1, 3, 4, get("k"), found(2, "b")),
		op(2, 5, 6, get("k"), found(1, "a")),
	)
}

func TestIndeterminateWriteMayHaveHappened(t *testing.T) {
	check(t, porcupine.Ok,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(1, 2, 3, cas("k", expectVersion, 1, "b"), unknown),
		op(2, 10, 11, get("k"), found(2, "b")),
	)
}

func TestIndeterminateWriteMayNotHaveHappened(t *testing.T) {
	check(t, porcupine.Ok,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(1, 2, 3, cas("k", expectVersion, 1, "b"), unknown),
		op(2, 10, 11, get("k"), found(1, "a")),
	)
}

func TestIndeterminateWriteCannotUndo(t *testing.T) {
	// It happened (b was read), then a later read must not see a again.
	check(t, porcupine.Illegal,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(1, 2, 3, cas("k", expectVersion, 1, "b"), unknown),
		op(2, 10, 11, get("k"), found(2, "b")),
		op(2, 12, 13, get("k"), found(1, "a")),
	)
}

func TestWrongVersionIsIllegal(t *testing.T) {
	check(t, porcupine.Illegal,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(0, 2, 3, cas("k", expectAny, 0, "b"), applied(3, "b")),
	)
}

func TestLostUpdateIsIllegal(t *testing.T) {
	// Two CAS on version 1 both applied.
	check(t, porcupine.Illegal,
		op(0, 0, 1, cas("k", expectAny, 0, "a"), applied(1, "a")),
		op(1, 2, 5, cas("k", expectVersion, 1, "b"), applied(2, "b")),
		op(2, 2, 5, cas("k", expectVersion, 1, "c"), applied(2, "c")),
	)
}

func TestKeysArePartitioned(t *testing.T) {
	check(t, porcupine.Ok,
		op(0, 0, 1, cas("x", expectAbsent, 0, "a"), applied(1, "a")),
		op(1, 0, 1, cas("y", expectAbsent, 0, "b"), applied(1, "b")),
		op(0, 2, 3, get("x"), found(1, "a")),
		op(1, 2, 3, get("y"), found(1, "b")),
	)
}
