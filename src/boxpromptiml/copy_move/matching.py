"""A nearest-neighbour field by PatchMatch: for every patch, the most similar patch at least a minimum
distance away, found without comparing all pairs.

PatchMatch (Barnes et al., 2009) improves a random field by letting good matches spread to neighbours (a
copied region is matched by one offset, or by offsets that change slowly when it was rotated or scaled) and by
random search around the current match. Here every step runs on all positions at once (neighbours at a
distance of several pixels as well as adjacent ones, as in jump flooding), so it vectorises in torch instead of
scanning pixel by pixel.
"""

from __future__ import annotations

import math

import torch

INFINITY = float("inf")
FAR = 1.0e4  # feature value of unusable patches (real features are log-scaled, well under 10)
FAR_DISTANCE = FAR * FAR / 4  # a squared distance this large involves an unusable patch
SORTED_PROJECTIONS = 2  # random directions along which patches are sorted to seed the field
SORTED_STEPS = (-3, -2, -1, 1, 2, 3)  # ranks apart that are tried as matches


def nearest_neighbour_field(features: torch.Tensor, usable: torch.Tensor, min_distance: float,
                            iterations: int, longest_jump: int, seed: int = 0,
                            random_search: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """For features K x h x w, the target of each position (2 x h x w: row, column) and its squared feature
    distance (h x w; infinite where no usable target was found). Targets are usable positions at least
    ``min_distance`` away (a patch always resembles its overlapping neighbours). ``random_search=False`` leaves
    out PatchMatch's random tries around each match (a third of the cost), keeping the sorted seeds and the
    propagation."""
    channels, height, width = features.shape
    count = height * width
    table = features.reshape(channels, count).T.contiguous()
    # an unusable patch is put far from everything: no distance check is needed in the loop
    table[~usable.reshape(count)] = FAR
    rows = torch.arange(height, dtype=torch.int32).repeat_interleave(width)
    cols = torch.arange(width, dtype=torch.int32).repeat(height)
    lowest_rows, highest_rows = -rows, height - 1 - rows
    lowest_cols, highest_cols = -cols, width - 1 - cols
    generator = torch.Generator().manual_seed(seed)
    min_squared = int(math.ceil(min_distance * min_distance))

    positions = torch.arange(count, dtype=torch.int32)
    ones = torch.ones(channels)

    def cost(offset_rows: torch.Tensor, offset_cols: torch.Tensor) -> torch.Tensor:
        index = positions + offset_rows * width + offset_cols
        # index_select: 7x faster than table[i]; then in place: a second N x K temporary costs more than the sums
        gathered = table.index_select(0, index)
        distance = torch.mv(gathered.sub_(table).square_(), ones)  # a matrix-vector product sums rows faster
        too_near = offset_rows * offset_rows + offset_cols * offset_cols < min_squared
        return distance.masked_fill_(too_near, INFINITY)

    def random_offsets() -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, height, (count,), generator=generator, dtype=torch.int32) - rows,
                torch.randint(0, width, (count,), generator=generator, dtype=torch.int32) - cols)

    offset_rows, offset_cols = random_offsets()
    best = cost(offset_rows, offset_cols)

    def consider(candidate_rows: torch.Tensor, candidate_cols: torch.Tensor) -> None:
        nonlocal offset_rows, offset_cols, best
        # a candidate that points outside is moved to the nearest position inside
        candidate_rows = torch.clamp(candidate_rows, lowest_rows, highest_rows)
        candidate_cols = torch.clamp(candidate_cols, lowest_cols, highest_cols)
        candidate = cost(candidate_rows, candidate_cols)
        better = candidate < best
        offset_rows = torch.where(better, candidate_rows, offset_rows)
        offset_cols = torch.where(better, candidate_cols, offset_cols)
        best = torch.where(better, candidate, best)

    # seeds: patches next to each other when all are sorted along a random direction of feature space are
    # likely near neighbours (the sort of Fridrich et al.'s block matching); a copy's patches find their
    # originals this way whatever the copy's rotation, and propagation spreads them
    for _ in range(SORTED_PROJECTIONS):
        direction = torch.randn(channels, generator=generator)
        order = torch.argsort(table @ direction)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(count)
        for step in SORTED_STEPS:
            partner = order[(rank + step).clamp(0, count - 1)]
            consider(rows.index_select(0, partner) - rows, cols.index_select(0, partner) - cols)

    def rolled(values: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
        return torch.roll(values.view(height, width), shift, (0, 1)).reshape(count)

    jumps = [2 ** k for k in range(8) if 2 ** k <= min(longest_jump, max(height, width) - 1)][::-1]
    for _ in range(iterations):
        for jump in jumps:
            for shift in ((jump, 0), (-jump, 0), (0, jump), (0, -jump)):
                # the neighbour's offset, as if the copy were moved without turning
                consider(rolled(offset_rows, shift), rolled(offset_cols, shift))
        for shift in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            # the match two neighbours in a line predict, as if the copy were turned or scaled (affine)
            twice = (2 * shift[0], 2 * shift[1])
            consider(2 * rolled(offset_rows, shift) - rolled(offset_rows, twice),
                     2 * rolled(offset_cols, shift) - rolled(offset_cols, twice))
        if not random_search:
            continue
        radius = max(height, width) // 2
        while radius >= 1:
            consider(offset_rows + torch.randint(-radius, radius + 1, (count,), generator=generator, dtype=torch.int32),
                     offset_cols + torch.randint(-radius, radius + 1, (count,), generator=generator, dtype=torch.int32))
            radius //= 2
        consider(*random_offsets())
    targets = torch.stack([rows + offset_rows, cols + offset_cols]).view(2, height, width).long()
    best = best.masked_fill_(best >= FAR_DISTANCE, INFINITY)  # matched nothing usable
    return targets, best.view(height, width)
