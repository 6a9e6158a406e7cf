import * as assert from "node:assert/strict";
import { ITEM_LIMITS, parseItemFilter, parseItemValue, validatePath } from "../../src/domain/itemRules";
import { expectInvalidArgument } from "../support/expectInvalidArgument";

describe("domain/itemRules: store paths, values and filters", () => {
  it("paths: 1..32 labels of 1..255 bytes, no '.' or NUL; patterns may be empty", () => {
    assert.deepEqual(validatePath("path", ["a", "b"], true), ["a", "b"]);
    assert.deepEqual(validatePath("prefix", [], false), []);
    expectInvalidArgument(() => validatePath("path", [], true), "path", /at least 1 label/);
    expectInvalidArgument(() => validatePath("path", Array(33).fill("a"), true), "path", /limit is 32/);
    expectInvalidArgument(() => validatePath("path", ["a", "b.c"], true), "path[1]", /"\."/);
    expectInvalidArgument(() => validatePath("path", ["", "b"], true), "path[0]", /empty/);
    expectInvalidArgument(() => validatePath("path", ["\u0000"], true), "path[0]", /NUL/);
    expectInvalidArgument(() => validatePath("path", ["é".repeat(128)], true), "path[0]", /256 bytes/);
  });

  it("values: a JSON object jsonb can store, within the size and depth limits", () => {
    assert.equal(parseItemValue("v", '{"a":[1,{"b":null}]}', 100), '{"a":[1,{"b":null}]}');
    expectInvalidArgument(() => parseItemValue("v", "[]", 100), "v", /JSON object/);
    expectInvalidArgument(() => parseItemValue("v", "null", 100), "v", /JSON object/);
    expectInvalidArgument(() => parseItemValue("v", "{", 100), "v", /valid JSON/);
    expectInvalidArgument(() => parseItemValue("v", '{"a":"xxxxxxxx"}', 10), "v", /limit is 10 bytes/);
    expectInvalidArgument(() => parseItemValue("v", '{"a\\u0000":1}', 100), "v", /NUL/);
    expectInvalidArgument(() => parseItemValue("v", '{"a":"\\udc00"}', 100), "v", /surrogate/);
    assert.ok(parseItemValue("v", '{"a":"\\ud83d\\ude00"}', 100), "a surrogate pair is fine");
    expectInvalidArgument(() => parseItemValue("v", '{"a":-1e400}', 100), "v", /out of range/);
    const deep = (n: number) => `{"a":${"[".repeat(n)}${"]".repeat(n)}}`;
    assert.ok(parseItemValue("v", deep(ITEM_LIMITS.maxValueDepth - 1), 1000));
    expectInvalidArgument(() => parseItemValue("v", deep(ITEM_LIMITS.maxValueDepth), 1000), "v", /deeper than 64/);
  });

  it("filters: equalities go to the containment test (objects only there), operators to conditions", () => {
    assert.deepEqual(parseItemFilter("f", "", 100), { contains: {}, conditions: [] });
    assert.deepEqual(parseItemFilter("f", '{"k":"n","o":{"x":1},"t":[1]}', 100), {
      contains: { k: "n", o: { x: 1 }, t: [1] },
      conditions: [
        { field: "k", op: "eq", value: "n" },
        { field: "t", op: "eq", value: [1] },
      ],
    });
    assert.deepEqual(parseItemFilter("f", '{"s":{"$gte":1,"$lt":"z","$ne":null,"$eq":2}}', 100), {
      contains: { s: 2 },
      conditions: [
        { field: "s", op: "gte", value: 1 },
        { field: "s", op: "lt", value: "z" },
        { field: "s", op: "ne", value: null },
        { field: "s", op: "eq", value: 2 },
      ],
    });
    expectInvalidArgument(() => parseItemFilter("f", '{"s":{"$in":[1]}}', 100), "f.s.$in", /unknown operator/);
    expectInvalidArgument(() => parseItemFilter("f", '{"s":{"$gt":true}}', 100), "f.s.$gt", /number or a string/);
    expectInvalidArgument(() => parseItemFilter("f", '{"s":{"$gt":1,"x":1}}', 100), "f.s", /mix/);
    expectInvalidArgument(() => parseItemFilter("f", '{"":1}', 100), "f.", /empty/);
    expectInvalidArgument(() => parseItemFilter("f", "1", 100), "f", /JSON object/);
    const many = JSON.stringify(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])));
    expectInvalidArgument(() => parseItemFilter("f", many, 10_000), "f", /more than 64 conditions/);
  });
});
