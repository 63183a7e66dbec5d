/**
 * Hierarchical Node Compression (PAPER.md, "HNC"): a cheap augmentation of a labelled tree.
 *
 * @module
 */
import { Random } from "../inference/mod.ts";
import { labelMonteCarlo, type TreeNode } from "../mcts/mod.ts";

/** Options of {@linkcode hnc}. */
export interface HncOptions {
  /** Seed of the coin (default 0); ignored when `coin` or `rng` is given. */
  seed?: number;
  /** The random source of the coin. */
  rng?: Random;
  /** The coin: true merges the child it is flipped for (default: `rng.next() < 0.5`). */
  coin?: () => boolean;
  /** A node needs at least this many children for one of them to move (default 4). */
  minChildren?: number;
  /** A child needs at least this depth (steps from the root) to move (default 2). */
  minDepth?: number;
}

/** The result of {@linkcode hnc}. */
export interface HncResult {
  /** The new tree (index = id, same ids as the input), relabelled. */
  nodes: TreeNode[];
  /** Ids of the moved (merged) nodes, in the order they moved. */
  moved: number[];
}

/**
 * Hierarchical Node Compression, as PAPER.md states it and as the reference code
 * (`self-training/construct_hrm_train_data.py`, `split_node`) does it:
 *
 * 1. Walk the tree breadth-first (children in list order).
 * 2. For each node with at least `minChildren` (4) children that was not itself moved, go
 *    through its children in order; for each child of *height* >= `minDepth` (2) flip the coin
 *    until one comes up true (so at most one child per node moves; each flip has probability
 *    0.5).
 * 3. The child that moves gets its last two steps merged into one step (its parent's step +
 *    "\n\n" + its own step), is removed from its parent's children and appended, with its whole
 *    subtree, to its grandparent's children. Its depth and those of its descendants drop by 1.
 * 4. Monte-Carlo labels are recomputed: the moved node's subtree is unchanged, so it keeps its
 *    score; its old parent loses those leaves and its score changes.
 *
 * "Height" here is what the reference code calls `node.height`: the number of steps on the
 * node's path from the root (our `depth`; the root is 0). Merging a node's last two steps
 * shortens that path by one ("height - 1" in PAPER.md), which only makes sense for the depth
 * from the root, not for a distance down to the leaves. Depth >= 2 means the node has a parent
 * step to merge with.
 *
 * The moved node's `reward` becomes NaN (the reward model never scored the merged text), its
 * `logprob` and `tokens` are the sums of both steps'. One difference from the reference: its
 * descendants keep their unmerged step lists there (so their samples repeat the original
 * tree's, and its set union drops them); here their paths are read off the new tree, so they
 * see the merged step.
 *
 * @param nodes A tree (index = id, root 0); not changed.
 * @param options Seed, rng or coin; thresholds.
 * @returns The new tree and the moved nodes.
 * @example
 * ```ts
 * const { nodes: compressed, moved } = hnc(tree, { seed: 1 });
 * ```
 */
export function hnc(nodes: readonly TreeNode[], options: HncOptions = {}): HncResult {
  const tree = nodes.map((n, i) => {
    if (n.id !== i) {
      throw new RangeError(`Cannot compress a tree: node at index ${i} has id ${n.id}`);
    }
    return { ...n, children: [...n.children] };
  });
  if (tree.length === 0 || tree[0].parent !== -1) {
    throw new RangeError("Cannot compress a tree without a root: node 0 must have parent -1");
  }
  const rng = options.rng ?? new Random(options.seed ?? 0);
  const coin = options.coin ?? (() => rng.next() < 0.5);
  const minChildren = options.minChildren ?? 4, minDepth = options.minDepth ?? 2;
  const moved = new Set<number>();
  const order: number[] = [];
  const queue = [0];
  while (queue.length > 0) {
    const node = tree[queue.shift()!];
    const kids = [...node.children]; // as they were when the walk reached the node
    queue.push(...kids);
    if (kids.length < minChildren || moved.has(node.id) || node.parent < 0) continue;
    for (const id of kids) {
      if (tree[id].depth < minDepth || !coin()) continue;
      move(tree, tree[id]);
      moved.add(id);
      order.push(id);
      break;
    }
  }
  labelMonteCarlo(tree);
  return { nodes: tree, moved: order };
}

/** Merge `child`'s step into its parent's and hang it (with its subtree) under the grandparent. */
function move(tree: TreeNode[], child: TreeNode): void {
  const parent = tree[child.parent];
  const grand = tree[parent.parent];
  parent.children = parent.children.filter((c) => c !== child.id);
  grand.children.push(child.id);
  child.parent = grand.id;
  child.text = `${parent.text}\n\n${child.text}`;
  child.logprob += parent.logprob;
  child.tokens += parent.tokens;
  child.reward = NaN;
  const stack = [child.id];
  while (stack.length > 0) {
    const n = tree[stack.pop()!];
    n.depth -= 1;
    stack.push(...n.children);
  }
}
