"""How much memory pgvector needs to build an index, and memory sizes as PostgreSQL writes them.

One estimate, used by :func:`vecalchemy.build_index` (to choose ``maintenance_work_mem``)
and by :func:`vecalchemy.doctor` (finding VA305), both taken from pgvector 0.8's sources:

* HNSW (``hnswbuild.c``, ``hnswutils.c``, ``hnsw.h``): while the graph fits in
  ``maintenance_work_mem`` it is built in memory; once it does not, pgvector says
  "hnsw graph no longer fits into maintenance_work_mem after N tuples", writes the graph
  out and inserts every remaining row as an ordinary ``INSERT`` would: many times
  slower. Each distinct vector is one element: ``HnswElementData`` (128 bytes on 64-bit
  platforms), its array of per-layer neighbour-list pointers (8 bytes a layer), one
  neighbour array per layer (an 8-byte header plus 16 bytes per ``HnswCandidate``; 2m
  slots on layer 0, m above) and the value itself (``vector``: 8 + 4d bytes,
  ``halfvec``: 8 + 2d, ``bit``: 8 + d/8, each rounded up to 8). An element reaches layer
  L with probability m^-L, so it has 1/(m-1) upper layers on average. The serial build
  allocates from a generation memory context (8 bytes of header a chunk, four chunks an
  element); a parallel build puts the graph in one dynamic shared memory segment of
  ``maintenance_work_mem`` less 4 MB.
* IVFFlat (``ivfkmeans.c``): k-means on ``max(50 * lists, 10000)`` sampled rows needs
  the samples, three arrays of centres and ``4 * samples * lists + 4 * lists^2`` bytes
  of distance bounds; more than ``maintenance_work_mem`` is an error ("memory required
  is N MB").

Private to vecalchemy.
"""

from __future__ import annotations

import math
import re

from vecalchemy.errors import InvalidArgument
from vecalchemy.metrics import Storage

__all__ = [
    "HEADROOM",
    "MB",
    "PARALLEL_RESERVE",
    "format_bytes",
    "hnsw_graph_bytes",
    "ivfflat_build_bytes",
    "memory_for",
    "parse_bytes",
    "value_bytes",
]

MB = 1024 * 1024
_ELEMENT = 128  # sizeof(HnswElementData) on 64-bit platforms
_ARRAY_HEADER = 8  # offsetof(HnswNeighborArray, items)
_CANDIDATE = 16  # sizeof(HnswCandidate)
_CHUNK_HEADER = 8  # a generation context's chunk header
_CHUNKS = 4  # element, neighbour pointers, layer-0 array, value
#: What a parallel build keeps of maintenance_work_mem for other things (3 MB) and as
#: slack (1 MB) before it counts the graph area.
PARALLEL_RESERVE = 4 * MB
#: Margin on top of the estimate: memory context blocks are allocated 1 MB at a time,
#: duplicate vectors and level draws vary.
HEADROOM = 1.2


def _align(n: int) -> int:
    return (n + 7) // 8 * 8


def value_bytes(storage: Storage, dim: int) -> int:
    """Bytes of one indexed value in memory (its varlena, rounded up to 8)."""
    if storage is Storage.SPARSEVEC:
        raise InvalidArgument("a sparsevec's size depends on its non-zero elements")
    return _align(storage.bytes_per_row(dim))


def hnsw_graph_bytes(rows: int, dim: int, storage: Storage, m: int) -> int:
    """Bytes an HNSW build of ``rows`` vectors needs to keep its graph in memory.

    Example::

        >>> hnsw_graph_bytes(200_000, 384, Storage.VECTOR, 16) // 2**20
        429
    """
    upper = 1 / (m - 1)  # expected number of layers above layer 0
    element = (
        _ELEMENT
        + 8 * (1 + upper)  # neighbour-list pointers
        + _ARRAY_HEADER
        + _CANDIDATE * 2 * m  # layer 0
        + upper * (_ARRAY_HEADER + _CANDIDATE * m)
        + value_bytes(storage, dim)
        + _CHUNK_HEADER * (_CHUNKS + upper)
    )
    return math.ceil(rows * element)


def ivfflat_build_bytes(rows: int, dim: int, storage: Storage, lists: int) -> int:
    """Bytes IVFFlat's k-means needs for ``lists`` lists (pgvector errors above
    ``maintenance_work_mem``).

    Example::

        >>> ivfflat_build_bytes(1_000_000, 384, Storage.VECTOR, 1000) // 2**20
        271
    """
    item = value_bytes(storage, dim)
    samples = max(50 * lists, 10_000)
    used = min(samples, rows)
    return (
        samples * item
        + 2 * lists * item  # centres and new centres
        + 4 * lists * 4  # counts, s, newcdist
        + 4 * used * 2  # closest centres, upper bounds
        + 4 * used * lists  # lower bounds
        + 4 * lists * lists  # half distances between centres
    )


def memory_for(estimate: int) -> int:
    """The ``maintenance_work_mem`` that holds ``estimate`` bytes, serial or parallel:
    the estimate with 20% headroom plus the parallel build's 4 MB, in whole MB.

    Example::

        >>> format_bytes(memory_for(450 * 2**20))
        '544MB'
    """
    return math.ceil((estimate * HEADROOM + PARALLEL_RESERVE) / MB) * MB


_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": MB, "gb": 1024 * MB, "tb": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b?)\s*$", re.IGNORECASE)


def parse_bytes(value: int | str, what: str = "memory") -> int:
    """``"4GB"``, ``"512MB"``, ``"640kB"`` or a number of bytes -> bytes.

    Example::

        >>> parse_bytes("1.5GB"), parse_bytes(1024)
        (1610612736, 1024)
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidArgument(f"{what} must be a size such as '4GB' or a number of bytes")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidArgument(f"{what} must be positive, got {value}")
        return value
    found = _SIZE.match(value)
    if found is None:
        raise InvalidArgument(
            f"{what} must be a size such as '4GB', '512MB' or '640kB', got {value!r}"
        )
    number, unit = found.groups()
    unit = unit.lower()
    if unit and not unit.endswith("b"):
        unit += "b"
    size = int(float(number) * _UNITS[unit])
    if size <= 0:
        raise InvalidArgument(f"{what} must be positive, got {value!r}")
    return size


def format_bytes(size: int) -> str:
    """Bytes as a PostgreSQL memory setting: whole GB when exact, else MB (rounded up),
    kB below 1 MB.

    Example::

        >>> format_bytes(4 * 2**30), format_bytes(300 * 2**20 + 1), format_bytes(640 * 1024)
        ('4GB', '301MB', '640kB')
    """
    if size >= 1024 * MB and size % (1024 * MB) == 0:
        return f"{size // (1024 * MB)}GB"
    if size >= MB:
        return f"{math.ceil(size / MB)}MB"
    return f"{math.ceil(size / 1024)}kB"
