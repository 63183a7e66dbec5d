/**
 * Opening a libsql database: where the URL points, the pragmas for files, and the
 * migrations (applied with drizzle's migrator, from the folder beside this module).
 *
 * @module
 */
import { type Client, createClient } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as schema from "./schema.ts";

/** The drizzle database over the store's schema, with its libsql client at `$client`. */
export type StoreDb = LibSQLDatabase<typeof schema> & { $client: Client };

/** How long a writer waits for another process's lock before failing. */
export const BUSY_TIMEOUT_MS = 5000;

const MIGRATIONS = fileURLToPath(new URL("./migrations", import.meta.url));
/** A URL with a scheme other than `file:` (libsql accepts libsql, http(s), ws(s)). */
const SCHEME = /^[a-z][a-z0-9+.-]+:/i;

/** Where a store URL points. */
export interface Target {
  /** The URL handed to libsql. */
  url: string;
  /** The file's path, for local files; undefined for `:memory:` and servers. */
  file?: string;
}

/**
 * Resolve a store URL: a plain path, `file:...`, `:memory:`, or a server URL.
 *
 * @param url What the user gave.
 */
export function resolveTarget(url: string): Target {
  if (url === ":memory:" || url.startsWith("file::memory:")) return { url };
  if (url.startsWith("file:")) {
    const rest = url.slice("file:".length).replace(/^\/\/[^/?#]*/, "").replace(/[?#].*$/, "");
    return { url, file: resolve(decodeURIComponent(rest)) };
  }
  if (SCHEME.test(url)) return { url };
  const file = resolve(url);
  return { url: pathToFileURL(file).href, file };
}

/** The URL without its query (where an auth token may sit), for messages. */
export function redact(url: string): string {
  return url.replace(/\?.*$/, "?…");
}

/**
 * Open the client and bring the schema up to date. Throws whatever libsql or the
 * migrator throws; the caller names the URL.
 */
export async function openDb(
  target: Target,
  authToken: string | undefined,
): Promise<StoreDb> {
  if (target.file) mkdirSync(dirname(target.file), { recursive: true });
  const client = createClient({
    url: target.url,
    authToken,
    timeout: BUSY_TIMEOUT_MS,
    // One connection for files: the pragmas below then hold for every statement, and
    // in-process callers queue instead of contending for SQLite's lock.
    ...(target.file ? { concurrency: 1 } : {}),
  });
  try {
    if (target.file) {
      await client.execute("PRAGMA journal_mode=WAL");
      await client.execute(`PRAGMA busy_timeout=${BUSY_TIMEOUT_MS}`);
    }
    const db = drizzle(client, { schema });
    await migrateWithRetry(db);
    return db;
  } catch (e) {
    client.close();
    throw e;
  }
}

/**
 * drizzle's migrator reads the applied migrations before it starts its transaction, so two
 * workers opening a fresh database at once can both try to apply them: the loser's
 * transaction fails and rolls back. Trying again then finds them applied.
 */
async function migrateWithRetry(db: StoreDb): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await migrate(db, { migrationsFolder: MIGRATIONS });
      return;
    } catch (e) {
      const text = String((e as Error)?.message ?? e) + String((e as Error)?.cause ?? "");
      if (attempt >= 5 || !/already exists|SQLITE_BUSY|database is locked/i.test(text)) throw e;
      await new Promise((r) => setTimeout(r, 20 * attempt));
    }
  }
}
