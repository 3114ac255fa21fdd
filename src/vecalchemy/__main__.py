"""``python -m vecalchemy``: the same as the ``vecalchemy`` command.

Example::

    $ python -m vecalchemy db status
"""

from __future__ import annotations

from vecalchemy.cli import main

if __name__ == "__main__":
    main(prog_name="vecalchemy")
