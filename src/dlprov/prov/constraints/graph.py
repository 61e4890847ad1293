"""Graph algorithms the constraints need, iterative so that a million-node document does
not hit Python's recursion limit: Tarjan's strongly connected components (linear in nodes
and edges) and a shortest path inside one component."""
from __future__ import annotations

from collections import deque
from typing import Sequence


def strongly_connected(successors: Sequence[Sequence[int]]) -> list[list[int]]:
    """The strongly connected components of the graph ``successors[node] -> nodes``."""
    count = len(successors)
    index = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(count):
        if index[root] != -1:
            continue
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, position = work[-1]
            edges = successors[node]
            if position < len(edges):
                work[-1] = (node, position + 1)
                nxt = edges[position]
                if index[nxt] == -1:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack[nxt] = True
                    work.append((nxt, 0))
                elif on_stack[nxt] and index[nxt] < low[node]:
                    low[node] = index[nxt]
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                if low[node] < low[parent]:
                    low[parent] = low[node]
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def path_within(successors: Sequence[Sequence[int]], inside: set[int], start: int,
                goal: int) -> list[int]:
    """A shortest path ``start`` ... ``goal`` using only nodes of ``inside`` (breadth
    first); ``[start]`` when they are the same node."""
    if start == goal:
        return [start]
    came: dict[int, int] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in successors[node]:
            if nxt in inside and nxt not in came:
                came[nxt] = node
                if nxt == goal:
                    path = [goal]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return path[::-1]
                queue.append(nxt)
    return [start, goal]
