// Reverse-mode autograd. Ops call record() after computing their output; the node holds the inputs
// and a backward rule closing over exactly the tensors it needs. backward() walks the graph from a
// root in reverse topological order, accumulating gradients; leaves that require grad (parameters)
// receive them in `.grad`, summed across backward() calls until zeroGrad.
import { isGradEnabled, keep, noGrad, tidy } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import { Tensor, type GradNode } from '../tensor/tensor.js';
import { ones } from '../tensor/create.js';
import { copy } from '../tensor/ops/shape.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';

/** True when an op on these inputs should record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!isGradEnabled()) return false;
  return inputs.some((t) => t?.requiresGrad);
}

/** Attaches a backward rule to `out` if any input requires grad (and grad mode is on). */
export function record(op: string, inputs: Tensor[], out: Tensor,
                       backward: (dy: Tensor) => (Tensor | null)[]): Tensor {
  if (needsGrad(...inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward } satisfies GradNode;
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS (graphs of deep models overflow recursion).
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

function accumulateLeaf(t: Tensor, g: Tensor): void {
  if (t.grad && !t.grad.disposed) {
    native.axpy(t.grad.id, g.id, g.size, 1);
    g.dispose();
  } else {
    t.grad = keep(g);
  }
}

/**
 * Back-propagates from `root`. Without `dy`, root must have one element and the upstream gradient
 * is 1. Intermediate gradients are disposed as soon as they are consumed; leaf gradients are kept.
 */
export function backward(root: Tensor, dy?: Tensor): void {
  root.assertLive();
  if (!root.requiresGrad) {
    throw new Error(`dd2: backward: ${root.describe()} does not require grad (no parameter reaches it)`);
  }
  if (dy && !shapeEq(dy.shape, root.shape)) {
    throw new RangeError(`dd2: backward: gradient shape ${fmtShape(dy.shape)} != output shape ${fmtShape(root.shape)}`);
  }
  if (!dy && root.size !== 1) {
    throw new RangeError(`dd2: backward: ${root.describe()} is not a scalar; pass the upstream gradient`);
  }
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    grads.set(root, dy ?? ones(root.shape, { device: root.device }));
    for (const t of topoOrder(root)) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.node) {
        accumulateLeaf(t, g === dy ? copy(g) : g);
        continue;
      }
      const node = t.node;
      const inGrads = tidy(() => node.backward(g));  // intermediates of the rule are freed here
      // A rule may pass dy through unchanged or return one tensor for several inputs: the first
      // receiver takes ownership, later ones add into their existing gradient or get a copy; the
      // caller's dy is never taken. Whatever nobody took is disposed.
      const taken = new Set<Tensor>();
      t.node.inputs.forEach((inp, k) => {
        let gi = inGrads[k];
        if (!gi || !inp.requiresGrad) return;
        if (!shapeEq(gi.shape, inp.shape)) {
          throw new Error(`dd2: internal: ${t.node!.op} backward gave ${fmtShape(gi.shape)} for input ${fmtShape(inp.shape)}`);
        }
        const prev = grads.get(inp);
        if (prev) {
          native.axpy(prev.id, gi.id, gi.size, 1);
          return;
        }
        if (taken.has(gi) || gi === dy) gi = copy(gi);
        taken.add(gi);
        grads.set(inp, gi);
      });
      for (const x of new Set([...inGrads, g])) {
        if (x && !taken.has(x) && x !== dy && !x.disposed) x.dispose();
      }
    }
  });
}


/** Clears `.grad` of the given tensors (disposing the gradient tensors). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
