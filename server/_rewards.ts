/**
 * `POST /v1/rewards`: the reward model's score of every step of a solution.
 *
 * @module
 */
import type { Hono } from "hono";
import { z } from "zod";
import type { Limits } from "./_config.ts";
import { abortError, type AppContext, readJson, requestSignal, reserve } from "./_context.ts";
import { apiError, isAbort, parseOr400 } from "./_errors.ts";

/** The body of `POST /v1/rewards`. */
function buildRewardsSchema(limits: Limits) {
  return z.strictObject({
    question: z.string().trim().min(1).max(limits.textChars),
    steps: z.array(z.string().max(limits.textChars)).min(1).max(limits.items),
  });
}

/** The zod schema type of rewardsSchema. */
export type RewardsSchema = ReturnType<typeof buildRewardsSchema>;

/**
 * The request schema with the server's caps.
 *
 * @param limits The caps.
 */
export function rewardsSchema(limits: Limits): RewardsSchema {
  return buildRewardsSchema(limits);
}

/** Register `POST /v1/rewards`. */
export function registerRewards(app: Hono, ctx: AppContext): void {
  app.post("/v1/rewards", async (c) => {
    const body = parseOr400(rewardsSchema(ctx.config.limits), await readJson(c));
    const { reward } = ctx.models.need();
    if (!reward) {
      throw apiError(400, "This server has no reward model (start it with --reward DIR|URL)");
    }
    const rs = requestSignal(c, ctx);
    const ticket = reserve(ctx, rs.signal);
    try {
      await ticket.ready;
      const scores = await reward.scoreSteps(body.question, body.steps, { signal: rs.signal });
      return c.json({ model: reward.id, scores });
    } catch (e) {
      if (rs.signal.aborted && isAbort(e)) throw abortError(rs, ctx);
      if (e instanceof RangeError) throw apiError(400, e.message); // e.g. longer than the context
      throw e;
    } finally {
      ticket.release();
    }
  });
}
