"""Minimum-cost linear assignment with a cost limit (the semantics of `lap.lapjv(extend_cost=True, cost_limit=L)`).

The official tracker matches tracks to detections with `lap.lapjv(cost, extend_cost=True,
cost_limit=thresh)`. That call solves a square problem of size n+m built from the n x m cost matrix:

    [ cost        L/2 ... ]      real row -> dummy column  : L/2  (row stays unmatched)
    [ L/2 ...     0   ... ]      dummy row -> real column  : L/2  (column stays unmatched)
                                 dummy row -> dummy column : 0

so leaving a row and a column unmatched costs L together, and a pair is matched only when that
lowers the total: the optimum maximises the sum of (L - cost) over matched pairs. We solve the same
extended problem exactly with a shortest-augmenting-path (Jonker-Volgenant / Hungarian) solver in
numpy; matrices in tracking are tiny (tracks + detections of one frame). Pure numpy, no torch.

Ties: when several assignments have the same optimal total (equal costs, or a pair costing exactly
L, which gains nothing) any optimum is a valid lapjv answer; we return a deterministic one and leave
pairs whose cost equals the limit unmatched.
"""
from __future__ import annotations

import numpy as np

__all__ = ["AssignmentError", "solve_square_assignment", "linear_assignment_with_limit"]


class AssignmentError(ValueError):
    """The cost matrix cannot be assigned (NaN costs, wrong shape, or no finite assignment)."""


def solve_square_assignment(cost: np.ndarray) -> np.ndarray:
    """Exact minimum-cost perfect matching of a square matrix.

    cost: [n, n] float (may contain +inf for forbidden pairs, not NaN).
    Returns col_for_row: [n] int64, the column assigned to each row.
    Successive shortest augmenting paths with dual potentials (Crouse 2016, the algorithm behind
    scipy's linear_sum_assignment); each augmentation is a vectorised Dijkstra over the columns.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise AssignmentError(f"expected a square cost matrix, got shape {cost.shape}")
    if np.isnan(cost).any():
        raise AssignmentError("the cost matrix contains NaN")
    n = cost.shape[0]
    row_potential = np.zeros(n)              # u: [n]
    col_potential = np.zeros(n)              # v: [n]
    col_for_row = np.full(n, -1, np.int64)   # [n]
    row_for_col = np.full(n, -1, np.int64)   # [n]

    for start_row in range(n):
        shortest = np.full(n, np.inf)        # tentative path length to each column
        came_from = np.full(n, -1, np.int64)  # row preceding each column on the path
        visited_rows = np.zeros(n, bool)
        visited_cols = np.zeros(n, bool)
        path_length = 0.0
        row = start_row
        sink = -1
        while sink < 0:
            visited_rows[row] = True
            open_cols = ~visited_cols
            reduced = path_length + cost[row] - row_potential[row] - col_potential  # [n]
            better = open_cols & (reduced < shortest)
            shortest[better] = reduced[better]
            came_from[better] = row
            candidates = np.where(open_cols, shortest, np.inf)
            lowest = candidates.min()
            if not np.isfinite(lowest):
                raise AssignmentError("no finite assignment exists for this cost matrix")
            at_lowest = np.flatnonzero(open_cols & (candidates == lowest))
            free = at_lowest[row_for_col[at_lowest] < 0]
            col = int(free[0]) if free.size else int(at_lowest[0])  # prefer ending the path
            path_length = lowest
            visited_cols[col] = True
            if row_for_col[col] < 0:
                sink = col
            else:
                row = int(row_for_col[col])
        # update the dual potentials so reduced costs stay non-negative
        row_potential[start_row] += path_length
        others = visited_rows.copy()
        others[start_row] = False
        row_potential[others] += path_length - shortest[col_for_row[others]]
        col_potential[visited_cols] -= path_length - shortest[visited_cols]
        # augment along the path back to start_row
        col = sink
        while True:
            row = int(came_from[col])
            row_for_col[col] = row
            col_for_row[row], col = col, col_for_row[row]
            if row == start_row:
                break
    return col_for_row


def linear_assignment_with_limit(cost: np.ndarray, cost_limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match rows to columns minimising total cost, leaving pairs costing more than `cost_limit` unmatched.

    cost: [n, m]. Returns (matches [k, 2] int64 rows (row, col) in increasing row order,
    unmatched_rows [n-k] int64, unmatched_cols [m-k] int64), like the official
    `tracker.matching_3dcenter.linear_assignment`. `cost_limit=inf` pads with zeros instead
    (lapjv's plain extend_cost), so every row or column that can be matched is.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise AssignmentError(f"expected a 2D cost matrix, got shape {cost.shape}")
    n_rows, n_cols = cost.shape
    if cost.size == 0:
        return np.empty((0, 2), np.int64), np.arange(n_rows, dtype=np.int64), np.arange(n_cols, dtype=np.int64)
    if np.isnan(cost_limit):
        raise AssignmentError("cost_limit is NaN")
    if np.isfinite(cost_limit):
        size = n_rows + n_cols
        extended = np.full((size, size), cost_limit / 2.0)
        extended[n_rows:, n_cols:] = 0.0
    else:
        size = max(n_rows, n_cols)
        extended = np.zeros((size, size))
    extended[:n_rows, :n_cols] = cost
    col_for_row = solve_square_assignment(extended)[:n_rows]
    matched = col_for_row < n_cols
    if np.isfinite(cost_limit):
        # a pair at exactly the limit ties with leaving both unmatched: prefer unmatched
        rows_idx = np.flatnonzero(matched)
        at_limit = cost[rows_idx, col_for_row[rows_idx]] >= cost_limit
        matched[rows_idx[at_limit]] = False
    rows = np.flatnonzero(matched).astype(np.int64)
    cols = col_for_row[rows].astype(np.int64)
    matches = np.stack([rows, cols], axis=1) if rows.size else np.empty((0, 2), np.int64)
    unmatched_rows = np.flatnonzero(~matched).astype(np.int64)
    col_taken = np.zeros(n_cols, bool)
    col_taken[cols] = True
    unmatched_cols = np.flatnonzero(~col_taken).astype(np.int64)
    return matches, unmatched_rows, unmatched_cols
