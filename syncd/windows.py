"""Date windows for a first pass that hold about the same number of records.

Windows equal in time are not equal in work: most invoices of an account can fall in its
last months, and the window holding them is then the critical path of a first sync. The
edges are found instead with `X-Total-Count` probes (`per_page=1`, `end_date = d - 1`):
each edge is searched over dates (a first probe interpolated on the counts, then halving
the span) until the records dated before it are within a quarter of a
window's share of its target, or PROBES_PER_EDGE probes were spent.
"""

from __future__ import annotations

from collections.abc import Callable

# Probes spent on one edge at most: 2**11 narrows a span of years to hours.
PROBES_PER_EDGE = 12


def balanced_edges(count_before: Callable[[int], int], low: int, high: int, total: int, parts: int) -> list[int]:
    """Dates `low < e_1 < ... <= high` splitting `total` records dated in `[low, high]` into
    up to `parts` windows `[e_(k-1), e_k - 1]` of similar counts.

    `count_before(d)` is the number of records dated before `d` (one probe). Fewer edges
    come back when many records share one date (a window cannot split a date).
    """
    if parts <= 1 or total <= 0 or high <= low:
        return []
    known: dict[int, int] = {low: 0}

    def before(date: int) -> int:
        if date not in known:
            known[date] = count_before(date)
        return known[date]

    share = total / parts
    slack = max(1.0, share / 4)
    edges: list[int] = []
    floor = low
    for k in range(1, parts):
        target = share * k
        if before(floor) >= target - slack:
            continue  # one date holds more than a share: the window before it took this one too
        below, above = floor, high  # before(below) < target; `above` is the last date to try
        edge = above
        for probe in range(PROBES_PER_EDGE):
            if above - below <= 1:
                break
            if probe:  # then halve the span: skewed dates converge too
                mid = (below + above) // 2
            else:
                mid = _guess(below, before(below), above, known.get(above, total), target)
            count = before(mid)
            if abs(count - target) <= slack:
                edge = mid
                break
            if count < target:
                below = mid
            else:
                above = edge = mid
        if edge <= floor or edge > high or before(edge) == before(floor):
            continue  # an empty window
        edges.append(edge)
        floor = edge
    return edges


def _guess(below: int, low_count: int, above: int, high_count: int, target: float) -> int:
    """The next date to probe in (below, above), interpolated on the counts: one probe an edge
    when dates are spread evenly; kept an eighth of the span from either end."""
    span = above - below
    share = (target - low_count) / (high_count - low_count) if high_count > low_count else 0.5
    margin = max(1, span // 8)
    return min(max(below + int(span * share), below + margin), above - margin)
