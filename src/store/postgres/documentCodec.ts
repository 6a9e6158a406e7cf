/**
 * Checkpoint documents compressed in the server (deflate, raw): a document
 * (the checkpoint without its channel values: ids, versions twice over) is
 * small JSON that Postgres never compresses (it compresses only rows above
 * ~2 KB) and that deflates to about a third. A compressed document is stored
 * with the type '' (a type no request may carry: a replica of release 4
 * returns it, and a saver's serializer refuses it loudly) and this encoding:
 * u8 format (1), u8 type length, the type (UTF-8), u32 the document's size
 * (read by agentstate_checkpoint_writes_put for the size limit), the deflated
 * bytes. Stored documents of another type are whole.
 */
import { deflateRawSync, inflateRawSync } from "node:zlib";

const FORMAT = 1;
/** Documents smaller than this are stored whole. */
export const MIN_COMPRESSED_DOCUMENT_BYTES = 128;

export interface Document {
  type: string;
  data: Buffer;
}

/**
 * deflate's window and hash memory sized to the document (zlib's default,
 * 32 KB of window and 128 KB of hash for any input, is a quarter-megabyte
 * allocated and cleared per call: most of a small document's cost). The
 * window still spans the whole document up to 32 KB, so what repeats is found
 * as before; inflate's default window reads any of them.
 */
function deflateOptions(size: number): { windowBits: number; memLevel: number } {
  const windowBits = Math.min(15, Math.max(9, Math.ceil(Math.log2(size))));
  return { windowBits, memLevel: Math.max(1, windowBits - 7) };
}

/** The document as stored: compressed when that saves a quarter of it, else as it is. */
export function storedDocument(doc: Document): Document {
  if (doc.data.length < MIN_COMPRESSED_DOCUMENT_BYTES) return doc;
  const type = Buffer.from(doc.type, "utf8");
  if (type.length > 255) return doc;
  const z = deflateRawSync(doc.data, deflateOptions(doc.data.length));
  const header = Buffer.alloc(6 + type.length);
  if ((header.length + z.length) * 4 > doc.data.length * 3) return doc;
  header[0] = FORMAT;
  header[1] = type.length;
  type.copy(header, 2);
  header.writeUInt32LE(doc.data.length, 2 + type.length);
  return { type: "", data: Buffer.concat([header, z]) };
}

/** The document a stored one stands for. Throws on an encoding it does not know or a wrong size. */
export function readDocument(stored: Document): Document {
  if (stored.type !== "") return stored;
  const d = stored.data;
  if (d.length < 6 || d[0] !== FORMAT || d.length < 6 + d[1]!) {
    throw new Error("checkpoint document: unknown encoding");
  }
  const t = d[1]!;
  const size = d.readUInt32LE(2 + t);
  const data = inflateRawSync(d.subarray(6 + t), { maxOutputLength: Math.max(1, size) });
  if (data.length !== size) throw new Error("checkpoint document: does not inflate to its size");
  return { type: d.toString("utf8", 2, 2 + t), data };
}
