/**
 * Shared helpers of the benchmarks: medians, alternating repetitions, progress lines.
 *
 * @module
 */
// deno-lint-ignore-file no-console

/** Median of a non-empty list (the mean of the two middle values for even lengths). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * CPU pressure now: the share of the last 10 s in which some runnable task waited for a CPU
 * (`/proc/pressure/cpu`, "some avg10"), in percent; NaN where the kernel does not report it.
 * Other processes on these 2-core machines show up here.
 */
export function cpuPressure(): number {
  try {
    const line = Deno.readTextFileSync("/proc/pressure/cpu").split("\n")[0];
    return Number(line.match(/avg10=([\d.]+)/)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * Median over rounds of `a[i] / b[i]`: the ratio of two variants measured side by side in
 * each round, which cancels what changed between rounds (other processes come and go).
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((x, i) => x / b[i]));
}

/** Print one progress line on stderr. */
export function progress(line: string): void {
  console.error(`[bench] ${line}`);
}

/** Seconds since `t0` (a `performance.now()` reading). */
export function since(t0: number): number {
  return (performance.now() - t0) / 1000;
}

/** Key of the CPU pressure readings (one after each measurement) in {@linkcode alternate}'s result. */
export const PRESSURE = "cpu pressure (%)";

/**
 * The order of round `r`: reversed in odd rounds, rotated by one every two rounds (A B C,
 * C B A, B C A, A C B, C A B, ...; for two variants A B, B A, B A, A B, ...), so that each
 * variant runs in every position and after every other one.
 */
export function roundOrder<T>(items: readonly T[], r: number): T[] {
  const shift = Math.floor(r / 2) % items.length;
  const order = items.map((_, i) => items[(i + shift) % items.length]);
  return r % 2 ? order.reverse() : order;
}

/**
 * Run the variants in turns, `reps` rounds, in the order of {@linkcode roundOrder}:
 * alternation spreads drift and the noise of other processes over every variant alike, and
 * the changing order spreads what one variant leaves behind for the next (threads still
 * spinning, memory to give back) over all of them.
 *
 * @param reps Rounds.
 * @param variants Named measurements; each returns a number (seconds, a rate, ...).
 * @param label Prefix of the progress lines.
 * @returns Per variant name, its measurements in round order; under {@linkcode PRESSURE}, the
 * CPU pressure after each measurement.
 */
export async function alternate(
  reps: number,
  variants: Record<string, () => Promise<number>>,
  label: string,
): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of Object.keys(variants)) out[name] = [];
  const entries = Object.entries(variants);
  for (let r = 0; r < reps; r++) {
    for (const [name, run] of roundOrder(entries, r)) {
      const v = await run();
      out[name].push(v);
      const psi = cpuPressure();
      (out[PRESSURE] ??= []).push(psi);
      progress(`${label} ${name} rep ${r + 1}/${reps}: ${fmt(v)} (cpu pressure ${psi}%)`);
    }
  }
  return out;
}

/** A number with about 3 significant digits. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

/** "min-max" of a list, formatted. */
export function spread(xs: readonly number[]): string {
  return `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
}

/** One row of a result table. */
export interface Row {
  /** What was measured. */
  measure: string;
  /** The median, formatted with its unit. */
  value: string;
  /** Comparison (ratio vs target, ceiling, ...). */
  note: string;
}

/** Rows as a markdown table. */
export function table(title: string, rows: readonly Row[]): string {
  const lines = [
    `### ${title}`,
    "",
    "| measure | median | vs / note |",
    "|---|---|---|",
    ...rows.map((r) => `| ${r.measure} | ${r.value} | ${r.note} |`),
    "",
  ];
  return lines.join("\n");
}

/** "met" or "missed" of a target. */
export function verdict(value: number, target: number): string {
  return value >= target ? "met" : "**missed**";
}
