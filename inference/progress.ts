/**
 * A progress bar on stderr: counts, rate, ETA and extra fields, redrawn at most every
 * 100 ms; plain lines instead when stderr is not a terminal (logs, CI).
 *
 * @module
 */

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Total units, if known. */
  total?: number;
  /** What a unit is called ("problems", "tokens"). */
  unit?: string;
  /** Where to write (default: stderr). */
  write?: (text: string) => void;
  /** Whether to redraw in place (default: stderr is a terminal). */
  tty?: boolean;
  /** Clock in ms. */
  now?: () => number;
  /** Minimum ms between non-terminal lines (default 2000). */
  lineEveryMs?: number;
}

const enc = new TextEncoder();

/** A progress bar. */
export class Progress {
  readonly #label: string;
  readonly #o: Required<Omit<ProgressOptions, "total">> & { total?: number };
  readonly #start: number;
  #done = 0;
  #last = -Infinity;
  #fields: Record<string, string> = {};
  #drawn = -1;

  /**
   * @param label Shown before the bar.
   * @param options Total, unit, output.
   */
  constructor(label: string, options: ProgressOptions = {}) {
    this.#label = label;
    const now = options.now ?? (() => performance.now());
    this.#o = {
      total: options.total,
      unit: options.unit ?? "items",
      write: options.write ?? ((t) => Deno.stderr.writeSync(enc.encode(t))),
      tty: options.tty ?? Deno.stderr.isTerminal(),
      now,
      lineEveryMs: options.lineEveryMs ?? 2000,
    };
    this.#start = now();
  }

  /** Units done so far. */
  get done(): number {
    return this.#done;
  }

  /** Add `n` done units and set extra fields (shown as `key value`). */
  tick(n = 1, fields: Record<string, string | number> = {}): void {
    this.#done += n;
    for (const [k, v] of Object.entries(fields)) this.#fields[k] = String(v);
    const t = this.#o.now();
    const every = this.#o.tty ? 100 : this.#o.lineEveryMs;
    if (t - this.#last >= every || this.#done === this.#o.total) {
      this.#last = t;
      this.#draw();
    }
  }

  /** The current line (no control characters). */
  line(): string {
    const { total, unit } = this.#o;
    const secs = Math.max(1e-9, (this.#o.now() - this.#start) / 1000);
    const rate = this.#done / secs;
    const parts = [this.#label];
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, this.#done / total);
      const width = 24, full = Math.round(frac * width);
      parts.push(`[${"#".repeat(full)}${"-".repeat(width - full)}]`);
      parts.push(`${this.#done}/${total} ${unit}`);
      const eta = rate > 0 ? (total - this.#done) / rate : Infinity;
      parts.push(`${rate.toFixed(2)} ${unit}/s`, `ETA ${formatSeconds(eta)}`);
    } else {
      parts.push(`${this.#done} ${unit}`, `${rate.toFixed(2)} ${unit}/s`);
    }
    for (const [k, v] of Object.entries(this.#fields)) parts.push(`${k} ${v}`);
    return parts.join("  ");
  }

  /** Draw the final state and end the line. */
  finish(): void {
    if (this.#drawn !== this.#done || this.#o.tty) this.#draw();
    if (this.#o.tty) this.#o.write("\n");
  }

  #draw(): void {
    this.#drawn = this.#done;
    this.#o.write(this.#o.tty ? `\r\x1b[2K${this.line()}` : `${this.line()}\n`);
  }
}

/** "1h02m", "3m05s", "12s", "--" for unknown. */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "--";
  const t = Math.round(s);
  if (t >= 3600) {
    return `${Math.floor(t / 3600)}h${String(Math.floor(t % 3600 / 60)).padStart(2, "0")}m`;
  }
  if (t >= 60) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
  return `${t}s`;
}
