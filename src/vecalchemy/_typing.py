"""Type aliases and ``Literal`` modes shared by several modules."""

from __future__ import annotations

from typing import Literal

__all__ = ["ConflictMode", "IndexMode"]


#: What a load does with the table's vector indexes: ``"keep"`` them, or ``"defer"``.
IndexMode = Literal["keep", "defer"]
#: What a load does with a row whose key exists: raise (``"error"``), ``"ignore"`` the
#: row, or ``"update"`` the existing one.
ConflictMode = Literal["error", "ignore", "update"]
