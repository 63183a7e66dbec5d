/**
 * A stand-alone `serve` entry for the subprocess tests (the CLI in main.ts wires the same
 * function): parse the flags, run the server, print a failure as one line and exit 1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { SERVE_OPTIONS, serveCommand } from "../../server/mod.ts";

try {
  const { values } = parseArgs({ args: Deno.args, options: SERVE_OPTIONS, strict: true });
  await serveCommand(values);
} catch (e) {
  Deno.stderr.writeSync(new TextEncoder().encode(`error: ${(e as Error).message}\n`));
  Deno.exit(1);
}
