"""The ``vecalchemy`` command line.

Each command parses its arguments, calls one library function and formats the result. A
:class:`~vecalchemy.errors.VecalchemyError` becomes ``error: <message>`` on stderr and exit
code 1 (see :class:`VecalchemyGroup`), never a traceback. Heavy modules are imported inside
the commands so that ``vecalchemy --help`` stays fast.

Example::

    $ vecalchemy db up
    embedded postgresql 18.6 is running in /home/me/.local/share/vecalchemy (pid 4012, port 46547)
    $ vecalchemy db psql -c "select 1"
    $ vecalchemy db url --driver asyncpg
    postgresql+asyncpg://postgres@/postgres?host=/home/me/.local/share/vecalchemy&port=46547
"""

from __future__ import annotations

from vecalchemy.cli import bench, commands, db, doctor, evaluate, index, sync
from vecalchemy.cli._group import CliError, VecalchemyGroup, main

__all__ = ["CliError", "VecalchemyGroup", "main"]

# imported for the commands they register on main
del bench, commands, db, doctor, evaluate, index, sync
