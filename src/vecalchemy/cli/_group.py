"""The ``vecalchemy`` command group and what every command shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    pass

__all__ = [
    "URL_OPTION",
    "CliError",
    "VecalchemyGroup",
    "main",
    "reflect_column",
    "tail",
]


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` on stderr with exit code 1.

    Example::

        raise CliError("nothing to do")
    """

    def show(self, file: Any = None) -> None:
        """Print the message (its first line is the summary, the rest are details)."""
        click.echo(f"error: {self.format_message()}", err=True)


class VecalchemyGroup(click.Group):
    """A click group that turns a :class:`~vecalchemy.errors.VecalchemyError` raised by any
    of its commands into a :class:`CliError`; its subgroups are of this class too.

    Example::

        @click.group(cls=VecalchemyGroup)
        def main() -> None: ...
    """

    group_class = type  # subgroups made with @group.group() are VecalchemyGroups

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, mapping vecalchemy's errors to a clean message and exit code 1."""
        from vecalchemy.errors import VecalchemyError

        try:
            return super().invoke(ctx)
        except VecalchemyError as exc:
            raise CliError(str(exc)) from exc


@click.group(cls=VecalchemyGroup)
@click.version_option(package_name="vecalchemy", prog_name="vecalchemy")
def main() -> None:
    """vecalchemy: semantic search on PostgreSQL + pgvector through SQLAlchemy."""


def reflect_column(conn: Any, table: str, column: str) -> Any:
    """The column ``column`` of ``table`` (``schema.table`` or ``table``), reflected from
    the database; :class:`CliError` when either is missing.

    Example::

        col = reflect_column(conn, "public.items", "embedding")
    """
    import sqlalchemy as sa

    schema, _, name = table.rpartition(".")
    try:
        reflected = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise CliError(f"no table {table}") from None
    if column not in reflected.c:
        raise CliError(f"table {table} has no column {column}")
    return reflected.c[column]


def tail(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters: a path's end says the most."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


URL_OPTION = click.option(
    "--url",
    envvar="VECALCHEMY_DATABASE_URL",
    help="Database URL (default: the embedded server, started if needed).",
)
