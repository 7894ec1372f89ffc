"""A nearest-neighbour field by PatchMatch: for every patch, the most similar patch at least a minimum
distance away, found without comparing all pairs.

PatchMatch (Barnes et al., 2009) improves a random field by letting good matches spread to neighbours (a
copied region is matched by one offset, or by offsets that change slowly when it was rotated or scaled) and by
random search around the current match. Here every step runs on all positions at once (neighbours at a
distance of several pixels as well as adjacent ones, as in jump flooding): candidates are made by whole-array
torch operations and weighed in one compiled pass (numba) that gathers, compares and keeps the better match.
"""

from __future__ import annotations

import math

import torch

INFINITY = float("inf")
FAR = 1.0e4  # feature value of unusable patches (real features are log-scaled, well under 10)
FAR_DISTANCE = FAR * FAR / 4  # a squared distance this large involves an unusable patch
SORTED_PROJECTIONS = 2  # random directions along which patches are sorted to seed the field
SORTED_STEPS = (-3, -2, -1, 1, 2, 3)  # ranks apart that are tried as matches


class _Field:
    """The current match (an offset) of every source patch and its squared feature distance; ``consider`` keeps,
    per source, the better of its match and a candidate. Sources are a ``grid_height`` x ``grid_width`` grid of
    positions of the full ``height`` x ``width`` field (every position, or every stride-th); targets are any
    position."""

    def __init__(self, table: torch.Tensor, height: int, width: int, rows: torch.Tensor, cols: torch.Tensor,
                 grid_shape: tuple[int, int], min_squared: int) -> None:
        self.table, self.width, self.min_squared = table, width, min_squared
        self.rows, self.cols, self.grid_shape = rows, cols, grid_shape
        self.positions = rows * width + cols
        # the sources' own features: the whole table when every position is a source
        self.source_table = table if len(self.positions) == len(table) else table.index_select(0, self.positions)
        self.lowest_rows, self.highest_rows = -rows, height - 1 - rows
        self.lowest_cols, self.highest_cols = -cols, width - 1 - cols
        self.offset_rows = self.offset_cols = self.best = torch.empty(0)

    def start(self, offset_rows: torch.Tensor, offset_cols: torch.Tensor) -> None:
        """The first match of every source: the given offsets (moved inside) whatever their cost."""
        self.offset_rows, self.offset_cols = offset_rows.clone(), offset_cols.clone()
        self.best = torch.empty(len(self.positions))
        self._run(offset_rows, offset_cols, replace=True)

    def consider(self, candidate_rows: torch.Tensor, candidate_cols: torch.Tensor) -> None:
        self._run(candidate_rows, candidate_cols, replace=False)

    def _run(self, candidate_rows: torch.Tensor, candidate_cols: torch.Tensor, replace: bool) -> None:
        from .loops import consider_all  # numba and LLVM load on first use

        consider_all(self.table.numpy(), self.source_table.numpy(), self.positions.numpy(), self.width,
                      self.min_squared, self.lowest_rows.numpy(), self.highest_rows.numpy(),
                      self.lowest_cols.numpy(), self.highest_cols.numpy(),
                      candidate_rows.to(torch.int32).contiguous().numpy(),
                      candidate_cols.to(torch.int32).contiguous().numpy(),
                      self.offset_rows.numpy(), self.offset_cols.numpy(), self.best.numpy(), replace)

    def rolled(self, values: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
        """``values`` of the source ``shift`` sources away (wrapping around the grid)."""
        return torch.roll(values.view(self.grid_shape), shift, (0, 1)).reshape(-1)

    def follow_lines(self) -> None:
        """Try the match two neighbours in a line predict, as if the copy were turned or scaled (affine)."""
        for shift in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            twice = (2 * shift[0], 2 * shift[1])
            self.consider(2 * self.rolled(self.offset_rows, shift) - self.rolled(self.offset_rows, twice),
                          2 * self.rolled(self.offset_cols, shift) - self.rolled(self.offset_cols, twice))

    def try_sorted_neighbours(self, orders: list[tuple[torch.Tensor, torch.Tensor]], all_rows: torch.Tensor,
                              all_cols: torch.Tensor) -> None:
        """Try the patches ``SORTED_STEPS`` ranks away in each (order, rank) of all positions sorted along a
        direction of feature space."""
        for order, rank in orders:
            source_rank = rank if len(rank) == len(self.positions) else rank.index_select(0, self.positions)
            for step in SORTED_STEPS:
                partner = order[(source_rank + step).clamp(0, len(order) - 1)]
                self.consider(all_rows.index_select(0, partner) - self.rows,
                              all_cols.index_select(0, partner) - self.cols)

    def propagate(self, jumps: list[int]) -> None:
        for jump in jumps:
            for shift in ((jump, 0), (-jump, 0), (0, jump), (0, -jump)):
                # the neighbour's offset, as if the copy were moved without turning
                self.consider(self.rolled(self.offset_rows, shift), self.rolled(self.offset_cols, shift))


def nearest_neighbour_field(features: torch.Tensor, usable: torch.Tensor, min_distance: float,
                            iterations: int, longest_jump: int, seed: int = 0,
                            random_search: bool = True, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """For features K x h x w, the target of each position (2 x h x w: row, column) and its squared feature
    distance (h x w; infinite where no usable target was found). Targets are usable positions at least
    ``min_distance`` away (a patch always resembles its overlapping neighbours). ``random_search=False`` leaves
    out PatchMatch's random tries around each match (a third of the cost), keeping the sorted seeds and the
    propagation. ``stride`` > 1 runs PatchMatch on every stride-th position along each axis only (matched against
    all positions); every position then takes the best of the matches of the four searched positions around it,
    and one round of propagation between adjacent positions follows."""
    channels, height, width = features.shape
    count = height * width
    table = features.reshape(channels, count).T.contiguous()
    # an unusable patch is put far from everything: no distance check is needed in the loop
    table[~usable.reshape(count)] = FAR
    all_rows = torch.arange(height, dtype=torch.int32).repeat_interleave(width)
    all_cols = torch.arange(width, dtype=torch.int32).repeat(height)
    min_squared = int(math.ceil(min_distance * min_distance))
    grid_rows = torch.arange(0, height, stride, dtype=torch.int32)
    grid_cols = torch.arange(0, width, stride, dtype=torch.int32)
    grid_height, grid_width = len(grid_rows), len(grid_cols)
    rows, cols = grid_rows.repeat_interleave(grid_width), grid_cols.repeat(grid_height)
    sources = grid_height * grid_width
    field = _Field(table, height, width, rows, cols, (grid_height, grid_width), min_squared)
    generator = torch.Generator().manual_seed(seed)

    def random_offsets() -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, height, (sources,), generator=generator, dtype=torch.int32) - rows,
                torch.randint(0, width, (sources,), generator=generator, dtype=torch.int32) - cols)

    field.start(*random_offsets())
    # seeds: patches next to each other when all are sorted along a random direction of feature space are
    # likely near neighbours (the sort of Fridrich et al.'s block matching); a copy's patches find their
    # originals this way whatever the copy's rotation, and propagation spreads them
    orders = []
    for _ in range(SORTED_PROJECTIONS):
        order = torch.argsort(table @ torch.randn(channels, generator=generator))
        rank = torch.empty_like(order)
        rank[order] = torch.arange(count)
        orders.append((order, rank))
    field.try_sorted_neighbours(orders, all_rows, all_cols)

    # jumps are counted in sources: a neighbour ``jump`` sources away lies ``jump * stride`` positions away
    reach = min(longest_jump // stride, max(grid_height, grid_width) - 1)
    jumps = [2 ** k for k in range(8) if 2 ** k <= reach][::-1]
    for _ in range(iterations):
        field.propagate(jumps)
        field.follow_lines()
        if not random_search:
            continue
        radius = max(height, width) // 2
        while radius >= 1:
            field.consider(
                field.offset_rows + torch.randint(-radius, radius + 1, (sources,), generator=generator,
                                                  dtype=torch.int32),
                field.offset_cols + torch.randint(-radius, radius + 1, (sources,), generator=generator,
                                                  dtype=torch.int32))
            radius //= 2
        field.consider(*random_offsets())
    if stride > 1:
        field = _densify(field, table, height, width, stride, all_rows, all_cols, min_squared, orders)
    targets = torch.stack([all_rows + field.offset_rows, all_cols + field.offset_cols]).view(2, height, width).long()
    best = field.best.masked_fill_(field.best >= FAR_DISTANCE, INFINITY)  # matched nothing usable
    return targets, best.view(height, width)


def _densify(grid: _Field, table: torch.Tensor, height: int, width: int, stride: int, all_rows: torch.Tensor,
             all_cols: torch.Tensor, min_squared: int, orders: list[tuple[torch.Tensor, torch.Tensor]]) -> _Field:
    """A field of every position from one searched on a grid. Each position tries the matches of the four grid
    positions around it (a moved copy shares one offset), its own sorted neighbours, the four matches' bilinear
    blend (exact inside a turned or scaled copy, whose offsets change linearly), then the matches its adjacent
    positions predict along a line."""
    dense = _Field(table, height, width, all_rows, all_cols, (height, width), min_squared)
    grid_height, grid_width = grid.grid_shape
    below_rows, left_cols = all_rows // stride, all_cols // stride
    weight_rows = (all_rows - below_rows * stride).float() / stride
    weight_cols = (all_cols - left_cols * stride).float() / stride
    corners = []
    for down, right in ((0, 0), (1, 0), (0, 1), (1, 1)):
        source = ((below_rows + down).clamp(max=grid_height - 1) * grid_width
                  + (left_cols + right).clamp(max=grid_width - 1))
        corners.append((grid.offset_rows.index_select(0, source), grid.offset_cols.index_select(0, source)))
    dense.start(*corners[0])
    for candidate in corners[1:]:
        dense.consider(*candidate)
    # every position's own sorted neighbours too: with only tries derived from the grid (whose blend is affine by
    # construction) authentic photos of the CASIA training part got a false pair 1.5x as often (9% against 6%)
    dense.try_sorted_neighbours(orders, all_rows, all_cols)
    blend = [((1 - weight_rows) * (1 - weight_cols) * corners[0][axis] + weight_rows * (1 - weight_cols)
              * corners[1][axis] + (1 - weight_rows) * weight_cols * corners[2][axis]
              + weight_rows * weight_cols * corners[3][axis]).round().int() for axis in (0, 1)]
    dense.consider(*blend)
    dense.follow_lines()
    return dense
