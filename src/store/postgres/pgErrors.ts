/**
 * Translates driver errors into domain errors: lost or refused connections and
 * a database that is shutting down become StoreUnavailableError, and so does
 * the client-side query timeout (Postgres frozen or partitioned; for a write,
 * saying that its outcome is unknown); a statement timeout (Postgres cancelled
 * it: nothing was applied) becomes StatementTimedOutError. Anything else is rethrown unchanged (a bug).
 */
import { AppError, StatementTimedOutError, StoreUnavailableError } from "../../errors/errors";

const UNAVAILABLE_SQLSTATES = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
  "08000",
  "08003",
  "08006",
  "08001",
  "08004",
  "25006", // read_only_sql_transaction (a standby)
  "25P03", // idle_in_transaction_session_timeout: the transaction was rolled back
  "57P05", // idle_session_timeout
]);

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"]);

export function isRetryableConflict(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "40P01" || code === "40001" || isStalePlan(err);
}

/**
 * A prepared statement whose function a newer release replaced with another
 * result type (a rolling upgrade): Postgres refuses to run it, so nothing
 * ran. pg-pool destroys the connection on the error; on a new one the
 * statement is prepared again and runs.
 */
export function isStalePlan(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === "0A000" && /cached plan must not change result type/.test(e.message ?? "");
}

/** The driver gave up waiting for an answer (pg's client-side `query_timeout`): Postgres frozen, partitioned or overloaded. */
export function isQueryReadTimeout(err: unknown): boolean {
  return err instanceof Error && err.message === "Query read timeout";
}

/**
 * `write`: the statement changes data. A write the client stopped waiting
 * for may still commit, and the message says so.
 */
export function translatePgError(err: unknown, write = false): unknown {
  if (err instanceof AppError) return err;
  if (isQueryReadTimeout(err)) {
    return new StoreUnavailableError(
      write
        ? "database did not answer within the query timeout; the write may or may not have been applied: read before retrying, or retry with the same idempotency key"
        : "database did not answer within the query timeout",
    );
  }
  const e = err as { code?: string; message?: string };
  if (e.code === "57014") return new StatementTimedOutError();
  if (isStalePlan(err))
    return new StoreUnavailableError("the database's functions were replaced by a newer release; retry");
  if (e.code !== undefined && (UNAVAILABLE_SQLSTATES.has(e.code) || NETWORK_CODES.has(e.code))) {
    return new StoreUnavailableError();
  }
  const msg = e.message ?? "";
  if (
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(
      msg,
    )
  ) {
    return new StoreUnavailableError();
  }
  return err;
}
