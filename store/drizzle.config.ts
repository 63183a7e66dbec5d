/**
 * drizzle-kit configuration: generates `store/migrations/` from `store/schema.ts`. Run from
 * the repository root:
 *
 * ```sh
 * deno run -A npm:drizzle-kit@0.31.11 generate --config store/drizzle.config.ts
 * ```
 *
 * @module
 */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./store/schema.ts",
  out: "./store/migrations",
});
