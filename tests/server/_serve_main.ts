/**
 * A stand-alone `serve` entry for the subprocess tests (the CLI in main.ts wires the same
 * function): parse the flags, run the server, print a failure as one line and exit 1; exit with
 * the code the command returns (130 after a second signal).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { SERVE_OPTIONS, serveCommand } from "../../server/mod.ts";

try {
  const { values } = parseArgs({ args: Deno.args, options: SERVE_OPTIONS, strict: true });
  const code = await serveCommand(values);
  if (code) Deno.exit(code);
} catch (e) {
  Deno.stderr.writeSync(new TextEncoder().encode(`error: ${(e as Error).message}\n`));
  Deno.exit(1);
}
