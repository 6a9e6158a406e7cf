import { Client } from "pg";

/** Runs one statement on a fresh connection to `url` and returns its rows (for assertions on the truth in Postgres). */
export async function pgQuery<T extends object = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}
