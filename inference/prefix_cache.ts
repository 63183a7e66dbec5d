/**
 * A prefix tree of KV caches under a byte budget.
 *
 * Each node is one text prefix; it stores only its own segment of the cache (the positions
 * after its parent's), so a search tree of depth d costs the tree's tokens, not d copies of
 * the path. Longest-prefix lookup walks down from the root. Over budget, the least recently
 * used leaf goes first (a node with children is never dropped before them, so every cached
 * node's chain stays complete).
 *
 * @module
 */
import { assembleKv, type KvBatch, type KvLayout, type KvSegment, segmentBytes } from "./kv.ts";

/** One cached prefix. */
export interface CacheNode {
  /** The full text this node stands for. */
  readonly text: string;
  /** Token ids of that text (all positions). */
  readonly ids: readonly number[];
  /** Positions of `ids` whose KV the chain root..this holds (ids.length or ids.length - 1). */
  readonly kvEnd: number;
  /** Logits after the last id, when `kvEnd === ids.length` (saves re-running it). */
  readonly lastLogits?: Float32Array;
  /** Parent (the root has none). */
  readonly parent?: CacheNode;
}

interface Node extends CacheNode {
  segment?: KvSegment;
  children: Set<Node>;
  lastUsed: number;
  bytes: number;
  parent?: Node;
}

/** Options of {@linkcode PrefixCache}. */
export interface PrefixCacheOptions {
  /** Budget in bytes for segments and saved logits (default 512 MiB). */
  maxBytes?: number;
}

/** The KV prefix tree. */
export class PrefixCache {
  readonly #layout: KvLayout;
  readonly #maxBytes: number;
  readonly #root: Node;
  #bytes = 0;
  #count = 0;
  #clock = 0;

  /**
   * @param layout Cache layout of the model.
   * @param options Byte budget.
   */
  constructor(layout: KvLayout, options: PrefixCacheOptions = {}) {
    const maxBytes = options.maxBytes ?? 512 * 1024 * 1024;
    if (!(maxBytes >= 0)) {
      throw new RangeError(
        `Cannot create PrefixCache as 'maxBytes' must be >= 0: current value is ${maxBytes}`,
      );
    }
    this.#layout = layout;
    this.#maxBytes = maxBytes;
    this.#root = { text: "", ids: [], kvEnd: 0, children: new Set(), lastUsed: 0, bytes: 0 };
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Nodes held now (the root not counted). */
  get size(): number {
    return this.#count;
  }

  /** The empty prefix. */
  get root(): CacheNode {
    return this.#root;
  }

  /**
   * The deepest cached node whose text is a prefix of `text` (the root if none); marks its
   * chain as used.
   */
  lookup(text: string): CacheNode {
    let node = this.#root;
    for (;;) {
      let next: Node | undefined;
      for (const c of node.children) {
        if (text.startsWith(c.text) && (!next || c.text.length > next.text.length)) next = c;
      }
      if (!next) break;
      node = next;
    }
    this.#touch(node);
    return node;
  }

  /**
   * Add a node under `parent` holding `segment` (positions parent.kvEnd .. kvEnd).
   *
   * @returns The new node (or the existing one with the same text).
   */
  insert(
    parent: CacheNode,
    entry: { text: string; ids: readonly number[]; segment: KvSegment; lastLogits?: Float32Array },
  ): CacheNode {
    const p = parent as Node;
    if (entry.segment.start !== p.kvEnd) {
      throw new RangeError(
        `Cannot insert into PrefixCache as the segment must start at its parent's end: expected ${p.kvEnd}, got ${entry.segment.start}`,
      );
    }
    for (const c of p.children) if (c.text === entry.text) return c;
    const bytes = segmentBytes(entry.segment) + (entry.lastLogits?.byteLength ?? 0);
    const node: Node = {
      text: entry.text,
      ids: entry.ids,
      kvEnd: entry.segment.start + entry.segment.length,
      lastLogits: entry.lastLogits,
      parent: p,
      segment: entry.segment,
      children: new Set(),
      lastUsed: 0,
      bytes,
    };
    p.children.add(node);
    this.#bytes += bytes;
    this.#count++;
    this.#touch(node);
    return node;
  }

  /** The cache of `node`'s whole chain, repeated `batch` times. */
  assemble(node: CacheNode, batch: number): KvBatch {
    const segments: KvSegment[] = [];
    for (let n: Node | undefined = node as Node; n; n = n.parent) {
      if (n.segment) segments.push(n.segment);
    }
    return assembleKv(this.#layout, segments.reverse(), batch);
  }

  /** Drop a node and everything under it (pruned branches). */
  remove(node: CacheNode): void {
    const n = node as Node;
    if (n === this.#root) return;
    for (const c of [...n.children]) this.remove(c);
    n.parent?.children.delete(n);
    this.#bytes -= n.bytes;
    this.#count--;
  }

  /**
   * Drop every cached node whose text starts with `prefix` (with everything under it): what a
   * finished or cancelled search no longer needs. Ancestors shorter than `prefix` stay.
   *
   * @returns How many subtrees were dropped.
   */
  removeUnder(prefix: string): number {
    const tops: Node[] = [];
    const stack = [...this.#root.children];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.text.startsWith(prefix)) tops.push(n);
      else if (prefix.startsWith(n.text)) stack.push(...n.children);
    }
    for (const n of tops) this.remove(n);
    return tops.length;
  }

  /** Drop least-recently-used leaves until the budget holds. */
  evict(): void {
    while (this.#bytes > this.#maxBytes) {
      let victim: Node | undefined;
      const stack = [...this.#root.children];
      while (stack.length) {
        const n = stack.pop()!;
        if (n.children.size) stack.push(...n.children);
        else if (!victim || n.lastUsed < victim.lastUsed) victim = n;
      }
      if (!victim) return;
      this.remove(victim);
    }
  }

  /** Drop everything. */
  clear(): void {
    for (const c of [...this.#root.children]) this.remove(c);
  }

  #touch(node: Node): void {
    const t = ++this.#clock;
    for (let n: Node | undefined = node; n; n = n.parent) n.lastUsed = t;
  }
}
