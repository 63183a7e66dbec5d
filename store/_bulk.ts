/**
 * Multi-row INSERTs built straight from a drizzle table's columns. drizzle's query builder
 * spends about 30 ms building the statements for a 1000-node tree (more than SQLite spends
 * writing it), so the bulk rows of a save skip it; the column names and value encodings
 * still come from the schema.
 *
 * @module
 */
import type { InStatement, InValue } from "@libsql/client";
import { type Column, getTableColumns, getTableName } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";

/** SQL text inlined as a column's value in every row (e.g. a subquery). */
export interface RawSql {
  /** The SQL expression. */
  raw: string;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const isRaw = (v: unknown): v is RawSql => v !== null && typeof v === "object" && "raw" in v;

/**
 * INSERT statements for `rows`, `chunkSize` rows each.
 *
 * @param table The drizzle table.
 * @param rows Rows keyed by the table's (camelCase) keys; each row has the same keys.
 * @param options `same`: values for every row (a {@linkcode RawSql} is inlined); the chunk size.
 */
export function insertRows<T extends SQLiteTable>(
  table: T,
  rows: readonly Record<string, unknown>[],
  options: { same?: Record<string, InValue | RawSql>; chunkSize: number },
): InStatement[] {
  if (rows.length === 0) return [];
  const columns = getTableColumns(table) as Record<string, Column>;
  const same = options.same ?? {};
  const perRow = Object.keys(rows[0]).filter((k) => !(k in same));
  const keys = [...Object.keys(same), ...perRow];
  for (const k of keys) {
    if (!columns[k]) {
      throw new TypeError(`Cannot insert into ${getTableName(table)}: no column '${k}'`);
    }
  }
  const tuple = "(" + keys.map((k) => isRaw(same[k]) ? (same[k] as RawSql).raw : "?").join(",") +
    ")";
  const bound = (v: unknown, k: string) =>
    (v === null || v === undefined ? null : columns[k].mapToDriverValue(v)) as InValue;
  const fixedArgs = Object.keys(same).flatMap((k) => isRaw(same[k]) ? [] : [bound(same[k], k)]);
  const head = `INSERT INTO ${quote(getTableName(table))} (${
    keys.map((k) => quote(columns[k].name)).join(",")
  }) VALUES `;
  const out: InStatement[] = [];
  for (let i = 0; i < rows.length; i += options.chunkSize) {
    const chunk = rows.slice(i, i + options.chunkSize);
    const args: InValue[] = [];
    for (const row of chunk) {
      args.push(...fixedArgs);
      for (const k of perRow) args.push(bound(row[k], k));
    }
    out.push({ sql: head + new Array(chunk.length).fill(tuple).join(","), args });
  }
  return out;
}
