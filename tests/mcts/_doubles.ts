/**
 * Scripted test doubles of the search interfaces, with known right answers.
 *
 * @module
 */
import { Random } from "../../inference/mod.ts";
import type { Proposal, ProposeOptions, StepPolicy, StepReward } from "../../mcts/mod.ts";

/** A step the scripted policy can propose. */
export interface Scripted {
  text: string;
  logprob: number;
  terminal?: boolean;
}

/**
 * A policy that proposes, after each path (steps joined by "|"), a fixed list of steps.
 * Temperature 0 returns the most likely one; otherwise k picks by a seeded draw weighted by
 * probability (so the same seed gives the same picks).
 */
export class ScriptedPolicy implements StepPolicy {
  calls = 0;
  released: string[] = [];
  /**
   * @param script Steps proposable after each path.
   * @param mode "sample" draws by probability; "cycle" lists the steps in order, repeating,
   * so every step is proposed once k reaches their number (for tests of ranking rules).
   */
  constructor(
    readonly script: Record<string, Scripted[]>,
    readonly mode: "sample" | "cycle" = "sample",
  ) {}

  propose(_q: string, steps: readonly string[], o: ProposeOptions): Promise<Proposal[]> {
    this.calls++;
    const options = this.script[steps.join("|")] ?? [];
    if (options.length === 0) return Promise.resolve([]);
    const toProposal = (s: Scripted): Proposal => ({
      text: s.text,
      logprob: s.logprob,
      tokens: 4,
      terminal: s.terminal ?? false,
    });
    if (o.temperature === 0) {
      const top = options.reduce((a, b) => (b.logprob > a.logprob ? b : a));
      return Promise.resolve(Array.from({ length: o.k }, () => toProposal(top)));
    }
    if (this.mode === "cycle") {
      return Promise.resolve(
        Array.from({ length: o.k }, (_, i) => toProposal(options[i % options.length])),
      );
    }
    const out: Proposal[] = [];
    for (let i = 0; i < o.k; i++) {
      const rng = new Random(o.seed + i);
      const w = options.map((s) => Math.exp(s.logprob));
      let r = rng.next() * w.reduce((a, b) => a + b, 0);
      let pick = options[options.length - 1];
      for (const [j, s] of options.entries()) {
        r -= w[j];
        if (r < 0) {
          pick = s;
          break;
        }
      }
      out.push(toProposal(pick));
    }
    return Promise.resolve(out);
  }

  release(_q: string, steps: readonly string[]): void {
    this.released.push(steps.join("|"));
  }
}

/** A reward that looks each step up by its text (default 0.5). */
export class ScriptedReward implements StepReward {
  calls = 0;
  constructor(readonly table: Record<string, number>) {}
  score(_q: string, steps: readonly string[]): Promise<number[]> {
    this.calls++;
    return Promise.resolve(steps.map((s) => this.table[s] ?? 0.5));
  }
}
