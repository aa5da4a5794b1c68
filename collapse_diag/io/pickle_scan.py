"""A pickle stream's shape, measured before it is unpickled: how much work building it costs.

``torch.load(weights_only=True)`` builds only plain containers and tensors, but
it builds them: a stream of a few hundred bytes can describe a tuple DAG whose
every level holds its child twice (through the memo), so that hashing it as a
dict key touches 2^depth nodes (depth 36: a hang of minutes). :func:`scan`
walks the opcodes (:mod:`pickletools`, nothing is built) and keeps, for every
stack item, its *expanded size*: the number of nodes it has once every shared
reference is counted again, as hashing and comparing do::

    size(scalar) = 1,    size(container) = 1 + sum(size(child))

A stream is refused when some object's expanded size exceeds
``max(MIN_EXPANDED, EXPANSION * number of opcodes)`` (a real state dict or data
file expands to about its opcode count: tensors are persistent ids), or when
containers nest deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import pickletools
from typing import NamedTuple

__all__ = ["EXPANSION", "MAX_DEPTH", "MIN_EXPANDED", "PickleShape", "scan"]

#: Expanded size allowed per opcode of the stream.
EXPANSION = 100
#: Expanded size always allowed.
MIN_EXPANDED = 10**6
#: Deepest container nesting allowed (a checkpoint nests a few levels).
MAX_DEPTH = 200
_CAP = 10**15  # sizes saturate here (no bignum arithmetic on hostile input)

# Opcodes by effect on the stack: push one item, pop n and push one container, ...
_PUSH_CONTAINER = {"EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "EMPTY_SET"}
_FROM_MARK = {"TUPLE", "LIST", "DICT", "FROZENSET", "INST", "OBJ"}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_ADD_FROM_MARK = {"APPENDS", "SETITEMS", "ADDITEMS"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}


class PickleShape(NamedTuple):
    """What :func:`scan` measured.

    Attributes:
        opcodes: Number of opcodes.
        expanded: Largest expanded size of an object built (shared references counted
            again), saturated at 1e15.
        depth: Deepest container nesting.
        complete: The walk understood every opcode (``False``: an opcode it does not
            model; the figures are then lower bounds).
    """

    opcodes: int
    expanded: int
    depth: int
    complete: bool


class _Item(NamedTuple):
    size: int
    depth: int


_SCALAR = _Item(1, 0)


def _added(target: _Item, children: list[_Item]) -> _Item:
    """``target`` after ``children`` were added into it (APPEND, SETITEM, BUILD, ...)."""
    return _Item(min(_CAP, target.size + sum(c.size for c in children)),
                 max(target.depth, 1 + max((c.depth for c in children), default=0)))
_MARK = None


def _container(children: list[_Item]) -> _Item:
    return _Item(min(_CAP, 1 + sum(c.size for c in children)),
                 1 + max((c.depth for c in children), default=0))


def scan(raw: bytes) -> PickleShape:
    """Walk the opcodes of one pickle stream and measure what unpickling it would build.

    Raises:
        ValueError: the stream does not parse (damaged); callers classify that.
    """
    stack: list[_Item | None] = []
    memo: dict[int, _Item] = {}
    count = expanded = depth = 0
    for op, arg, _ in pickletools.genops(raw):
        count += 1
        name = op.name
        if name == "STOP":
            break
        if name == "MARK":
            stack.append(_MARK)
        elif name in _PUSH_CONTAINER:
            stack.append(_Item(1, 1))
        elif name in _FROM_MARK or name in _ADD_FROM_MARK:
            i = len(stack) - 1 - stack[::-1].index(_MARK)
            children = [c for c in stack[i + 1:] if c is not None]
            del stack[i:]
            if name in _ADD_FROM_MARK:  # added into the container below the mark
                stack.append(_added(stack.pop() if stack else _Item(1, 1), children))
            else:
                stack.append(_container(children))
        elif name in _TUPLE_N:
            n = _TUPLE_N[name]
            children = [c for c in stack[-n:] if c is not None]
            del stack[-n:]
            stack.append(_container(children))
        elif name in ("APPEND", "SETITEM", "BUILD"):
            n = 2 if name == "SETITEM" else 1
            parts = [c for c in stack[-n:] if c is not None]
            del stack[-n:]
            stack.append(_added(stack.pop(), parts))
        elif name in ("REDUCE", "NEWOBJ"):
            parts = [c for c in stack[-2:] if c is not None]
            del stack[-2:]
            stack.append(_container(parts))
        elif name == "NEWOBJ_EX":
            parts = [c for c in stack[-3:] if c is not None]
            del stack[-3:]
            stack.append(_container(parts))
        elif name == "STACK_GLOBAL":
            del stack[-2:]
            stack.append(_SCALAR)
        elif name in _MEMO_PUT:
            key = len(memo) if name == "MEMOIZE" else arg
            if stack and stack[-1] is not None:
                memo[key] = stack[-1]
        elif name in _MEMO_GET:
            stack.append(memo.get(arg, _SCALAR))
        elif name in ("POP",):
            stack.pop()
        elif name == "POP_MARK":
            i = len(stack) - 1 - stack[::-1].index(_MARK)
            del stack[i:]
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "BINPERSID":
            stack.pop()
            stack.append(_SCALAR)
        elif name in ("PROTO", "FRAME"):
            pass
        elif op.stack_before == [] and len(op.stack_after) == 1:  # a scalar, a global, a pid
            stack.append(_SCALAR)
        else:
            return PickleShape(count, expanded, depth, False)
        if stack and stack[-1] is not None:
            expanded = max(expanded, stack[-1].size)
            depth = max(depth, stack[-1].depth)
    return PickleShape(count, expanded, depth, True)


def too_costly(shape: PickleShape) -> str | None:
    """Why building this stream would cost too much, or ``None`` when it would not."""
    limit = max(MIN_EXPANDED, EXPANSION * shape.opcodes)
    if shape.expanded > limit:
        return (f"its {shape.opcodes} pickle opcodes describe objects of {shape.expanded:.3g} "
                f"nodes once shared references are expanded (more than {limit:.3g}): hashing "
                "or comparing them would not finish")
    if shape.depth > MAX_DEPTH:
        return f"its containers nest {shape.depth} levels deep (more than {MAX_DEPTH})"
    return None
