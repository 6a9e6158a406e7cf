import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readDocument, storedDocument } from "../../src/store/postgres/documentCodec";

describe("documentCodec: checkpoint documents deflated in the server", () => {
  const doc = Buffer.from(
    JSON.stringify({ v: 4, seen: Array.from({ length: 30 }, (_, i) => `${i}`.padStart(32, "0")) }),
  );

  it("a compressible document is stored deflated under the type '' and read back whole", () => {
    const stored = storedDocument({ type: "json", data: doc });
    assert.equal(stored.type, "");
    assert.ok(stored.data.length * 4 < doc.length);
    assert.deepEqual(readDocument(stored), { type: "json", data: doc });
  });

  it("small and incompressible documents are kept as they are", () => {
    const small = { type: "json", data: Buffer.from('{"v":4}') };
    assert.equal(storedDocument(small), small);
    const noise = { type: "bytes", data: randomBytes(4096) };
    assert.equal(storedDocument(noise), noise);
    assert.equal(readDocument(noise), noise);
  });

  it("refuses an encoding it does not know, or one that does not inflate to its size", () => {
    assert.throws(() => readDocument({ type: "", data: Buffer.from([7, 0, 0, 0, 0, 0]) }), /unknown encoding/);
    const stored = storedDocument({ type: "json", data: doc });
    stored.data.writeUInt32LE(doc.length + 1, 6);
    assert.throws(() => readDocument(stored), /size/);
  });
});
