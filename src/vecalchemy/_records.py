"""Fast constructors for the frozen result records (``Hit``, ``CollectionHit``, ...).

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; for a
search's ten hits that is about a tenth of vecalchemy's own time per query. The records
keep their class, their frozenness and their equality; the search paths make them with
:func:`slot_constructor`, which sets the slots through their descriptors (generated
code, as ``dataclasses`` itself generates ``__init__``).

Private to vecalchemy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["slot_constructor"]

T = TypeVar("T")


def slot_constructor(cls: type[T]) -> Callable[..., T]:
    """A positional constructor of ``cls`` (a frozen dataclass with ``slots=True``):
    one argument per field, in field order, no defaults and no ``__post_init__``.

    Example::

        make = slot_constructor(Hit)
        make(row, 0.12, 0.88, None) == Hit(row, 0.12, 0.88)   # True
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__, which this would skip")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    obj = _new(_cls)"]
    for i, name in enumerate(names):
        scope[f"_set{i}"] = getattr(cls, name).__set__
        lines.append(f"    _set{i}(obj, {name})")
    lines.append("    return obj")
    exec("\n".join(lines), scope)
    make: Callable[..., T] = scope["make"]
    make.__qualname__ = f"slot_constructor({cls.__name__})"
    return make
