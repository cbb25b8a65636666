"""Turns every expected failure into one readable line and a non-zero exit.

`--debug` (anywhere on the command line) re-raises instead, with the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from controlplane.vocabulary import YunguanError

EXIT_INPUT = 2  # bad input or configuration: nothing was changed
EXIT_FAILURE = 1  # the environment failed (database unreachable, ...)


def run_cli(main: Callable[..., object], argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one exit per failure class
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        rv = main(args=argv, standalone_mode=False, prog_name="yunguan")
    except typer.Abort:
        err.print("error: aborted")
        return EXIT_FAILURE
    except typer.TyperException as exc:  # usage errors: Typer prints them its own way
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc}", markup=False)
        return int(getattr(exc, "exit_code", EXIT_INPUT))
    except YunguanError as exc:
        if debug:
            raise
        err.print(f"error: {exc.message}", markup=False)
        for problem in exc.problems[1:]:
            err.print(f"error: {problem}", markup=False)
        return EXIT_INPUT
    except OperationalError as exc:
        if debug:
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else exc.__class__.__name__
        err.print(f"error: database unreachable: {reason}", markup=False)
        return EXIT_FAILURE
    except SQLAlchemyError as exc:
        if debug:
            raise
        err.print(f"error: database: {exc.__class__.__name__}: {exc}".splitlines()[0], markup=False)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return rv if isinstance(rv, int) else 0
