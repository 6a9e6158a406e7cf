// EXPERIMENT, loaded into the server with
//   node bench/run.mjs --server-import bench/experiments/pg-prepared.mjs
// Gives every parameterised query a statement name (a hash of its text), so
// node-postgres prepares it once per connection instead of sending
// Parse+Bind+Describe+Execute (and Postgres parsing and planning it) on every
// call. It measures what passing `{ name, text, values }` in the store
// classes would give, without changing src/.
import { createHash } from "node:crypto";
import pg from "pg";
import process from "node:process";

const names = new Map();
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, values, callback) {
  if (typeof config === "string" && Array.isArray(values)) {
    let name = names.get(config);
    if (name === undefined) {
      name = "as_" + createHash("sha1").update(config).digest("hex").slice(0, 16);
      names.set(config, name);
    }
    return query.call(this, { name, text: config, values }, callback);
  }
  return query.call(this, config, values, callback);
};

process.stderr.write("experiment: node-postgres named prepared statements on\n");
