/**
 * A run store populated for the export tests: run "r1" with an annotation tree built by
 * `annotate()` and graded trajectories; run "r2" with a search tree only.
 *
 * @module
 */
import type { LibsqlRunStore } from "../../store/mod.ts";
import { buildTree, scriptedAnnotation } from "./_fixtures.ts";

const traj = (steps: string[], score: number, extra: Record<string, unknown> = {}) => ({
  steps,
  stepRewards: steps.map(() => score),
  score,
  ...extra,
});

/** Fill `store` (see the module docs); returns the annotation tree's id. */
export async function populate(store: LibsqlRunStore): Promise<{ treeId: number }> {
  await store.createRun({
    id: "r1",
    strategy: "annotate",
    config: {},
    seed: 0,
    policyId: "scripted",
    rewardId: "scripted-reward", // its trajectories carry reward scores
    problemsSource: "hand",
  });
  await store.saveProblemResult("r1", {
    problemId: "p1",
    index: 0,
    question: "What is 3 + 4?",
    gold: "7",
    tokens: 0,
    seconds: 0,
    trajectories: [
      traj(["a", "a2", "ANSWER 7"], 0.9, { correct: true, answer: "7", mcScore: 1, chosen: true }),
      traj(["a", "a1", "ANSWER 5"], 0.8, { correct: false, answer: "5", mcScore: 0 }),
      traj(["a", "a1", "ANSWER 5"], 0.7, { correct: false, answer: "5" }),
      traj(["b", "b1", "ANSWER 7"], 0.4, { correct: true, answer: "7" }),
      traj(["b", "b2", "ANSWER 7"], 0.6, { correct: true, answer: "7", mcScore: 0.5 }),
    ],
  });
  const treeId = await store.saveTree("r1", "p1", {
    kind: "annotation",
    seed: 1,
    nodes: await scriptedAnnotation(),
  });
  await store.saveProblemResult("r1", {
    problemId: "p2",
    index: 1,
    question: "What is 1 + 1?",
    gold: null,
    tokens: 0,
    seconds: 0,
    trajectories: [
      traj(["one and one", "ANSWER 2"], 0.9, { answer: "2" }),
      traj(["one plus one", "ANSWER 2"], 0.3, { answer: "2" }),
      traj(["guess", "ANSWER 3"], 0.95, { answer: "3" }),
      traj(["think", "ANSWER 2"], 0.6, { answer: "2" }),
    ],
  });
  await store.createRun({
    id: "r2",
    strategy: "mcts",
    config: {},
    seed: 0,
    policyId: "scripted",
    problemsSource: "hand",
  });
  await store.saveProblemResult("r2", {
    problemId: "q1",
    index: 0,
    question: "Q",
    tokens: 0,
    seconds: 0,
    tree: {
      kind: "search",
      seed: 0,
      nodes: buildTree([[0, -1, ""], [1, 0, "x"], [2, 0, "y"]]),
    },
  });
  return { treeId };
}
