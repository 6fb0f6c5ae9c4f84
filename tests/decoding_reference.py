"""Greedy decoding by full recomputation: what the compiled loops must reproduce."""

import numpy as np


def reference_greedy(model, prompts, steps, context, keep=None):
    """New ids of greedy decoding, re-running `model` on every row's visible tokens.

    Id 0 is padding and is never generated. The rows are laid out left-padded
    in one buffer, as the cached loop lays them out in its slots.

    - `keep=None`: exact one-token sliding, every row sees its last `context`
      tokens (the uncached loop).
    - `keep=K`: the cached sliding loop: the rows see the buffer from a start
      slot that jumps, when the next token would be the `context + 1`-th one
      seen, to the last `K` slots (`Decoder.decode_sliding`).
    """
    longest = max(len(p) for p in prompts)
    pads = [longest - len(p) for p in prompts]
    rows = [[0] * pad + list(p) for pad, p in zip(pads, prompts, strict=True)]
    start = 0
    new = [[] for _ in prompts]
    for _ in range(steps):
        for row, pad, out in zip(rows, pads, new, strict=True):
            seen = row[max(start, pad):] if keep else row[pad:][-context:]
            logits = np.asarray(model(np.array([seen], "int32")))[0, -1]
            out.append(1 + int(np.argmax(logits[1:])))
        for row, out in zip(rows, new, strict=True):
            row.append(out[-1])
        if keep and len(rows[0]) - start > context:
            start = len(rows[0]) - keep
    return new
