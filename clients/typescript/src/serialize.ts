/**
 * Request serializers for the calls that carry large values (PutCheckpoint,
 * PutWrites). The generated ones encode each request with a new BinaryWriter,
 * whose buffer grows by doubling from a few hundred bytes to the request's
 * size (each step a new buffer and a copy), and then copy the result once more
 * into a Buffer. These reuse one writer, whose buffer keeps its size between
 * calls, and wrap the bytes `finish()` returns without copying them: for a
 * 23 KB checkpoint that is about 90 KB less allocated and copied per call
 * (BENCHMARKS.md, LangGraph section: garbage collection grows with the copies).
 * Encoding is synchronous, so one writer serves every call in turn.
 */
import { BinaryWriter } from "@bufbuild/protobuf/wire";

/** A writer is kept only after requests up to this size, so its buffer stays at most twice that. */
const KEEP_AFTER_BYTES = 512 * 1024;

let spare: BinaryWriter | undefined;

/** A requestSerialize for `type` that reuses one BinaryWriter across calls. */
export function reusingSerializer<T>(type: { encode(message: T, writer?: BinaryWriter): BinaryWriter }) {
  return (value: T): Buffer => {
    // Taken out while in use: an encode that throws leaves the writer half
    // written, and it is then dropped, never reused.
    const writer = spare ?? new BinaryWriter();
    spare = undefined;
    const bytes = type.encode(value, writer).finish();
    // Reused only when finish() handed out a copy of its buffer, not a view
    // of it (grpc-js may frame the message after the next call was encoded).
    const own = (writer as unknown as { buffer?: Uint8Array }).buffer;
    if (bytes.byteLength <= KEEP_AFTER_BYTES && own !== undefined && own.buffer !== bytes.buffer) spare = writer;
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}
