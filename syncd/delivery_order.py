"""The order in which the delivery thread takes the pages of concurrent walks.

An invoice delivered before its customer is mapped and written twice: once without the
customer, and again when the customer arrives (Delivery.redeliver_dependents). So while a
stream that others refer to (customers; invoices, for transactions) is still being walked,
the pages of the streams referring to it are held back, in order, and delivered when it
ends. A held page's cursor has not moved, so a kill loses nothing. Past HOLD_PAGES held
pages (memory), a walk whose page is held waits for that page's delivery before it fetches
another (`over`): it pauses instead of writing its records twice. No wait can close a
circle: a stream that refers to no other (customers) is never held.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from typing import Any

from syncd.delivery import REFERENCES, Target

HOLD_PAGES = 32


class DeliveryOrder:
    """`take(walker, item)` yields the (walker, item) pairs to deliver now, in order."""

    def __init__(self, walkers: Sequence[Any], targets: Sequence[Target], planning: Sequence[str] = ()) -> None:
        """`planning`: streams whose walks are not known yet (`planned` gives them); until
        then each counts as one running walk, so what refers to it is held meanwhile."""
        self.running = Counter(w.stream.name for w in walkers)
        self.running.update(planning)
        self.needs = {
            name: {REFERENCES[f] for t in targets for f in t.references(name)} - {name} for name in self.running
        }
        self.held: dict[int, deque[tuple[int, Any, Any]]] = {}
        self.count = 0
        self._arrived = itertools.count()  # held items' order of arrival, across walks

    def _waits(self, walker: Any) -> bool:
        return any(self.running[name] for name in self.needs.get(walker.stream.name, ()))

    def take(self, walker: Any, item: Any) -> Iterator[tuple[Any, Any]]:
        queue = self.held.get(id(walker))
        if queue is not None or self._waits(walker):
            self.held.setdefault(id(walker), deque()).append((next(self._arrived), walker, item))
            self.count += 1
            return
        yield walker, item

    @property
    def over(self) -> bool:
        """More pages held than HOLD_PAGES: a walk whose page was just held must wait."""
        return self.count > HOLD_PAGES

    def planned(self, name: str, walks: int) -> None:
        """`name`'s planning ended with `walks` walks (0: it failed); see `ready`."""
        self.running[name] += walks - 1

    def finished(self, walker: Any) -> None:
        """`walker` ended: walks that waited on its stream may go on (see `ready`)."""
        self.running[walker.stream.name] -= 1

    def ready(self) -> Iterator[tuple[Any, Any]]:
        """Held items whose walks no longer wait, in the order they arrived.

        Across walks too: a record whose date was edited during a first pass moves to another
        date window, and the copy fetched later is the newer one; released window by window,
        an older copy held in one window could be delivered after the newer one of another.
        """
        queues = []
        for key in list(self.held):
            queue = self.held[key]
            if not self._waits(queue[0][1]):
                queues.append(self.held.pop(key))
                self.count -= len(queue)
        for _, walker, item in heapq.merge(*queues, key=lambda held: held[0]):
            yield walker, item
