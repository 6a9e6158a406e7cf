/**
 * Input rules for store items (domain/items.ts): paths, values, filters, and
 * the fixed limits that bound them. Every check throws an InvalidArgumentError
 * naming the request field and the limit (guarantee 6). Values are checked so
 * that everything accepted here is accepted by Postgres' jsonb as well: a
 * JSON object, no NUL or lone surrogate in any string, finite numbers, a
 * bounded depth.
 */
import { InvalidArgumentError } from "../errors/errors";
import type { FilterCondition, FilterOp, ItemFilter } from "./items";

/** Fixed limits of StoreService (README, "Limits"); sizes and page sizes are the configured ones. */
export const ITEM_LIMITS = Object.freeze({
  maxPathLabels: 32,
  maxLabelBytes: 255,
  maxValueDepth: 64,
  maxFilterConditions: 64,
  maxFieldBytes: 1024,
  maxOffset: 100_000,
});

/** A path's labels as stored: joined by "." (labels never contain one). */
export const PATH_SEPARATOR = ".";

/**
 * A path or path pattern: at most maxPathLabels labels of 1..maxLabelBytes
 * bytes, no "." and no NUL. `required`: at least one label.
 */
export function validatePath(field: string, labels: readonly string[], required: boolean): string[] {
  if (required && labels.length === 0) throw new InvalidArgumentError(field, "must have at least 1 label");
  if (labels.length > ITEM_LIMITS.maxPathLabels) {
    throw new InvalidArgumentError(field, `has ${labels.length} labels, the limit is ${ITEM_LIMITS.maxPathLabels}`);
  }
  labels.forEach((label, i) => {
    const f = `${field}[${i}]`;
    if (label === "") throw new InvalidArgumentError(f, "must not be empty");
    const bytes = Buffer.byteLength(label, "utf8");
    if (bytes > ITEM_LIMITS.maxLabelBytes) {
      throw new InvalidArgumentError(f, `is ${bytes} bytes, the limit is ${ITEM_LIMITS.maxLabelBytes} bytes`);
    }
    if (label.includes(PATH_SEPARATOR)) throw new InvalidArgumentError(f, 'must not contain "."');
    if (label.includes("\u0000")) throw new InvalidArgumentError(f, "must not contain NUL");
  });
  return [...labels];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Throws unless every string (keys too) and number in `v` can be stored as jsonb, within the depth limit. */
function checkJsonValue(field: string, root: unknown): void {
  const stack: { v: unknown; depth: number }[] = [{ v: root, depth: 1 }];
  const checkString = (s: string) => {
    if (s.includes("\u0000")) throw new InvalidArgumentError(field, "must not contain NUL (\\u0000) in a string");
    if (LONE_SURROGATE.test(s)) throw new InvalidArgumentError(field, "must not contain a lone UTF-16 surrogate");
  };
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (typeof v === "string") checkString(v);
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(field, "has a number out of range");
    } else if (v !== null && typeof v === "object") {
      if (depth > ITEM_LIMITS.maxValueDepth) {
        throw new InvalidArgumentError(field, `is nested deeper than ${ITEM_LIMITS.maxValueDepth} levels`);
      }
      if (Array.isArray(v)) {
        for (const e of v) stack.push({ v: e, depth: depth + 1 });
      } else {
        for (const [k, e] of Object.entries(v)) {
          checkString(k);
          stack.push({ v: e, depth: depth + 1 });
        }
      }
    }
  }
}

function parseJsonObject(field: string, text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(field, "is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InvalidArgumentError(field, "must be a JSON object");
  }
  checkJsonValue(field, parsed);
  return parsed as Record<string, unknown>;
}

/** An item's value: JSON text of an object, at most `maxBytes` bytes. Returns the text unchanged. */
export function parseItemValue(field: string, text: string, maxBytes: number): string {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > maxBytes) throw new InvalidArgumentError(field, `is ${bytes} bytes, the limit is ${maxBytes} bytes`);
  parseJsonObject(field, text);
  return text;
}

const OPS: Record<string, FilterOp> = {
  $eq: "eq",
  $ne: "ne",
  $gt: "gt",
  $gte: "gte",
  $lt: "lt",
  $lte: "lte",
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * A search filter (SearchItemsRequest.filter_json), "" for none. Each entry of
 * the object is a top-level field and either a value it must equal (an
 * object value: the field must contain it, as LangGraph compares nested
 * objects key by key) or an object of operators. Equalities also go into
 * `contains` so the value index narrows the search first.
 */
export function parseItemFilter(field: string, text: string, maxBytes: number): ItemFilter {
  const filter: ItemFilter = { contains: {}, conditions: [] };
  if (text === "") return filter;
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > maxBytes) throw new InvalidArgumentError(field, `is ${bytes} bytes, the limit is ${maxBytes} bytes`);
  const obj = parseJsonObject(field, text);
  const add = (c: FilterCondition) => {
    filter.conditions.push(c);
    if (filter.conditions.length > ITEM_LIMITS.maxFilterConditions) {
      throw new InvalidArgumentError(field, `has more than ${ITEM_LIMITS.maxFilterConditions} conditions`);
    }
  };
  for (const [name, spec] of Object.entries(obj)) {
    const f = `${field}.${name}`;
    if (name === "") throw new InvalidArgumentError(f, "field name must not be empty");
    if (Buffer.byteLength(name, "utf8") > ITEM_LIMITS.maxFieldBytes) {
      throw new InvalidArgumentError(f, `field name is longer than ${ITEM_LIMITS.maxFieldBytes} bytes`);
    }
    const opKeys = isPlainObject(spec) ? Object.keys(spec).filter((k) => k.startsWith("$")) : [];
    if (!isPlainObject(spec) || opKeys.length === 0) {
      // Plain equality. Objects match by containment (key by key); anything else exactly.
      filter.contains[name] = spec;
      if (!isPlainObject(spec)) add({ field: name, op: "eq", value: spec });
      continue;
    }
    if (opKeys.length !== Object.keys(spec).length) {
      throw new InvalidArgumentError(f, "must not mix operators ($eq, $ne, ...) with plain fields");
    }
    for (const [k, operand] of Object.entries(spec)) {
      const op = OPS[k];
      if (op === undefined) {
        throw new InvalidArgumentError(`${f}.${k}`, `unknown operator; allowed: ${Object.keys(OPS).join(", ")}`);
      }
      if (op !== "eq" && op !== "ne" && typeof operand !== "number" && typeof operand !== "string") {
        throw new InvalidArgumentError(`${f}.${k}`, "must be a number or a string");
      }
      if (op === "eq" && !isPlainObject(operand)) filter.contains[name] = operand;
      add({ field: name, op, value: operand });
    }
  }
  return filter;
}
