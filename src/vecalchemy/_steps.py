"""The one step protocol: work written once as a generator, run sync or async.

A search, a fused search and a load are each written once, as a generator that yields
:class:`Step` objects and receives each step's result; :func:`run_steps` and
:func:`arun_steps` drive it on a sync or an async connection (or session). A step knows
how to run itself both ways, so the generators contain no I/O and the runners no
logic (psycopg's ``generators.py`` does the same).

Private to vecalchemy.

Example::

    def count(table):
        result = yield Execute(select(func.count()).select_from(table))
        return result.scalar_one()

    n = run_steps(session, count(docs))            # or: await arun_steps(async_session, ...)
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = ["Execute", "Step", "arun_steps", "run_steps"]

R = TypeVar("R")


class Step(Protocol):
    """One unit of I/O: run on a sync bind, or awaited on an async one."""

    def run(self, bind: Any) -> Any:
        """Run on a ``Session`` or ``Connection``; return the result to send back."""

    async def arun(self, bind: Any) -> Any:
        """Run on an ``AsyncSession`` or ``AsyncConnection``."""


@dataclass(frozen=True)
class Execute:
    """Execute a statement with its parameters and execution options."""

    statement: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def run(self, bind: Any) -> Any:
        """``bind.execute(statement, params, execution_options=options)``."""
        if self.options:
            return bind.execute(self.statement, dict(self.params), execution_options=self.options)
        return bind.execute(self.statement, dict(self.params))

    async def arun(self, bind: Any) -> Any:
        """The async twin of :meth:`run`."""
        if self.options:
            return await bind.execute(
                self.statement, dict(self.params), execution_options=self.options
            )
        return await bind.execute(self.statement, dict(self.params))


def run_steps(bind: Any, steps: Generator[Step, Any, R]) -> R:
    """Drive ``steps`` on a sync bind: run each step, send back its result, return the
    generator's value."""
    result: Any = None
    try:
        while True:
            result = steps.send(result).run(bind)
    except StopIteration as done:
        value: R = done.value
        return value


async def arun_steps(bind: Any, steps: Generator[Step, Any, R]) -> R:
    """The async twin of :func:`run_steps`."""
    result: Any = None
    try:
        while True:
            result = await steps.send(result).arun(bind)
    except StopIteration as done:
        value: R = done.value
        return value
