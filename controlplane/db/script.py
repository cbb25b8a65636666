"""Several statements in one round trip: one simple-query string.

controlplane.db.pipeline sends a transaction's deferred writes, a query and
the reads carried with it together. psycopg's pipeline mode could do that,
but its per-statement machinery cost more client CPU than the statements'
work on the server; a single simple-query string, built here, costs little
on either side:

- values are bound client-side, each one rendered by psycopg's own
  adaptation (`Transformer.as_literal`, as `ClientCursor` does), never by
  hand;
- a statement with placeholders is `PREPARE`d once per database connection
  and then sent as `EXECUTE name(values)`: the server parses and plans it
  once, not on every execution. Which names a connection has prepared is
  kept in its pool entry's `info` (`Script`), which the pool empties when it
  replaces the DBAPI connection, and a name counts as prepared only once its
  PREPARE came back OK: the server skips whatever follows a failing
  statement in the string, and PREPARE is not transactional (a ROLLBACK does
  not undo it);
- only on connections where psycopg never prepares statements itself
  (`prepare_threshold` None, set by `pipeline.install`): once it holds some,
  its `rollback()` sends DEALLOCATE ALL, which would drop ours unseen.
  Elsewhere the values are written into the statement instead;
- rows come back through psycopg's loaders (the same Python types as its
  cursors give), as named tuples.

The server runs the string's statements in order and stops at the first
error, which `run` raises as the psycopg error of that result: its sqlstate
(lost races, unique violations) is kept.

A parameter's type comes from where it stands in the statement, as in any
PREPARE: one whose place says nothing (`SELECT %s`) is text.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections import OrderedDict, namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, generators, pq
from psycopg.adapt import Transformer
from psycopg.pq.abc import PGresult

_STATE = "yunguan.script"  # in the pool entry's info: see `_Connection`
MAX_PREPARED = 256  # per connection: beyond, the least recently used are deallocated
_MAX_FORMS = 4096  # statements are built from a few shapes; bounded all the same
_OK = pq.ExecStatus.COMMAND_OK
_ROWS = pq.ExecStatus.TUPLES_OK
_FATAL = pq.ExecStatus.FATAL_ERROR
_SEPARATOR = b"\n;"  # after a newline: a statement's trailing `--` comment ends before the `;`


def send(driver: psycopg.Connection[Any], parts: Sequence[bytes]) -> list[PGresult]:
    """The round trip: one result per statement run (tests/db/pipeline_probe.py
    wraps this to see what is sent)."""
    with driver.lock:
        driver.pgconn.send_query(_SEPARATOR.join(parts))
        results: list[PGresult] = driver.wait(generators.execute(driver.pgconn))
    return results


def begin_command(driver: psycopg.Connection[Any]) -> bytes:
    """The BEGIN psycopg would send before the first statement (as its
    `_get_tx_start_command` builds it), to travel in the script instead of
    costing a round trip of its own."""
    parts = [b"BEGIN"]
    if driver.isolation_level is not None:
        parts += [b"ISOLATION LEVEL", driver.isolation_level.name.replace("_", " ").encode()]
    if driver.read_only is not None:
        parts.append(b"READ ONLY" if driver.read_only else b"READ WRITE")
    if driver.deferrable is not None:
        parts.append(b"DEFERRABLE" if driver.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


# -- statements ------------------------------------------------------------------

_PLACEHOLDER = re.compile(rb"%(?:\(([^)]+)\).|.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Form:
    """A statement with psycopg placeholders (`%s`, `%(name)s`; `%%` is a %),
    split for binding: `chunks` around its placeholders, `slots` the value
    each placeholder takes, `keys` the names in value order (None:
    positional)."""

    chunks: tuple[bytes, ...]
    slots: tuple[int, ...]
    keys: tuple[str, ...] | None
    name: bytes
    prepare: bytes  # PREPARE name AS the statement with $n
    execute: bytes  # EXECUTE name( — the values follow

    def values(self, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        if self.keys is not None:
            if not isinstance(params, Mapping):
                raise psycopg.ProgrammingError("named placeholders need a mapping of parameters")
            try:
                return [params[k] for k in self.keys]
            except KeyError as exc:
                raise psycopg.ProgrammingError(f"query parameter missing: {exc}") from None
        if isinstance(params, Mapping) and self.slots:
            raise psycopg.ProgrammingError("positional placeholders need a sequence of parameters")
        values = [] if isinstance(params, Mapping) else list(params)
        if len(values) != len(self.slots):
            raise psycopg.ProgrammingError(
                f"the query has {len(self.slots)} placeholders but {len(values)} parameters"
            )
        return values

    def inline(self, literals: Sequence[bytes]) -> bytes:
        """The statement with the values written in its placeholders."""
        out = [self.chunks[0]]
        for slot, chunk in zip(self.slots, self.chunks[1:], strict=True):
            out += (literals[slot], chunk)
        return b"".join(out)


@functools.lru_cache(_MAX_FORMS)
def _form(sql: str) -> _Form:
    """Placeholders as psycopg reads them (psycopg._queries._split_query)."""
    query = sql.encode()
    chunks: list[bytes] = []
    slots: list[int] = []
    names: dict[str, int] = {}  # placeholder name -> value index
    kind: type | None = None
    pre, start = b"", 0
    for m in _PLACEHOLDER.finditer(query):
        pre += query[start : m.start()]
        start = m.end()
        token = m.group(0)
        if token == b"%%":
            pre += b"%"
            continue
        if token == b"%(" or token[-1:] not in b"sbt":
            raise psycopg.ProgrammingError(f"bad placeholder {token.decode()!r} in: {sql}")
        name = m.group(1).decode() if m.group(1) else None
        if kind is None:
            kind = type(name)
        elif kind is not type(name):
            raise psycopg.ProgrammingError("positional and named placeholders cannot be mixed")
        chunks.append(pre)
        pre = b""
        slots.append(len(slots) if name is None else names.setdefault(name, len(names)))
    chunks.append(pre + query[start:])
    name = b"yg_" + hashlib.blake2b(query, digest_size=12).hexdigest().encode()
    body = [chunks[0]]
    for slot, chunk in zip(slots, chunks[1:], strict=False):
        body += (b"$%d" % (slot + 1), chunk)
    return _Form(
        chunks=tuple(chunks),
        slots=tuple(slots),
        keys=tuple(names) if kind is str else None,
        name=name,
        prepare=b"PREPARE " + name + b" AS " + b"".join(body),
        execute=b"EXECUTE " + name + b"(",
    )


@functools.lru_cache(_MAX_FORMS)
def _plain(sql: str) -> bytes:
    # Sent as it is, `%` included, as psycopg sends a statement without
    # parameters. Cached like `_form`: the same few fixed statements.
    return sql.encode()


# -- one connection's script ---------------------------------------------------


class _Connection:
    """What a DBAPI connection keeps between scripts: the Transformer bound
    to it (its encoding, its adapters), and its prepared statement names,
    least recently used first."""

    __slots__ = ("driver", "prepared", "tx")

    def __init__(self, driver: psycopg.Connection[Any]) -> None:
        self.driver = driver
        self.tx = Transformer.from_context(driver)
        self.prepared: OrderedDict[bytes, None] = OrderedDict()


@functools.lru_cache(512)
def _row_class(names: tuple[bytes | None, ...], encoding: str) -> Any:
    # Keyed by the names as the result gives them: decoding them for every
    # result cost more than the lookup.
    return namedtuple("Row", [(n or b"?").decode(encoding) for n in names], rename=True)


class Script:
    """Statements to send together: `begin`, `add` each (its index in the
    results), `commit`, then `run` once; `rows` reads a result."""

    __slots__ = ("_changes", "_parts", "_prepares", "_state", "driver")

    def __init__(self, driver: psycopg.Connection[Any], info: dict[Any, Any]) -> None:
        state: _Connection | None = info.get(_STATE)
        if state is None or state.driver is not driver:
            state = info[_STATE] = _Connection(driver)
        self.driver = driver
        self._state = state
        self._parts: list[bytes] = []
        # (part, name, True: PREPARE / False: DEALLOCATE): applied to
        # `state.prepared` by `run`, each only if the server ran it.
        self._changes: list[tuple[int, bytes, bool]] = []
        self._prepares = driver.prepare_threshold is None

    def __bool__(self) -> bool:
        return bool(self._parts)

    def begin(self) -> None:
        self._parts.append(begin_command(self.driver))

    def commit(self) -> None:
        self._parts.append(b"COMMIT")

    def add(self, sql: str, params: Any) -> int:
        """`sql` with `params` bound as psycopg's `execute` would; the index of
        its result."""
        if params is None:
            self._parts.append(_plain(sql))
            return len(self._parts) - 1
        form = _form(sql)
        if not form.slots:
            self._parts.append(form.chunks[0])
            return len(self._parts) - 1
        tx = self._state.tx
        literals = [b"NULL" if v is None else tx.as_literal(v) for v in form.values(params)]
        if not self._prepares:
            self._parts.append(form.inline(literals))
            return len(self._parts) - 1
        prepared = self._state.prepared
        if form.name in prepared:
            prepared.move_to_end(form.name)
        elif not any(made and name == form.name for _, name, made in self._changes):
            self._change(form.prepare, form.name, prepared=True)  # first use here
        self._parts.append(form.execute + b", ".join(literals) + b")")
        return len(self._parts) - 1

    def _change(self, statement: bytes, name: bytes, *, prepared: bool) -> None:
        self._changes.append((len(self._parts), name, prepared))
        self._parts.append(statement)

    def run(self) -> list[PGresult]:
        """Sends the script; its results, or the first error raised."""
        prepared = self._state.prepared
        # Over the bound: the least recently used go, last (after the COMMIT,
        # if any; outside a transaction is fine: DEALLOCATE is not transactional).
        excess = len(prepared) + len(self._changes) - MAX_PREPARED
        for name in itertools.islice(prepared, max(excess, 0)):
            self._change(b"DEALLOCATE " + name, name, prepared=False)
        results = send(self.driver, self._parts)
        for part, name, made in self._changes:
            if part < len(results) and results[part].status == _OK:  # it ran
                if made:
                    prepared[name] = None
                else:
                    prepared.pop(name, None)
        last = results[-1] if results else None
        if last is not None and last.status not in (_OK, _ROWS):
            self._failed(len(results) - 1, last)
        if len(results) != len(self._parts):
            raise psycopg.ProgrammingError(
                f"{len(self._parts)} statements sent, {len(results)} results: "
                "each statement must be exactly one"
            )
        return results

    def _failed(self, part: int, result: PGresult) -> None:
        if result.status != _FATAL:
            raise psycopg.InterfaceError(f"unexpected result {pq.ExecStatus(result.status).name}")
        error = errors.error_from_result(result, encoding=self.driver.info.encoding)
        # Converge if the server's prepared statements and ours ever disagree
        # (a DEALLOCATE ALL or DISCARD ALL sent by someone else): this
        # transaction is lost, the connection's next ones work.
        statement = self._parts[part]
        if statement.startswith(b"EXECUTE yg_") and error.sqlstate == "26000":
            self._state.prepared.pop(statement[8 : statement.index(b"(")], None)
        elif statement.startswith(b"PREPARE yg_") and error.sqlstate == "42P05":
            self._state.prepared[statement.split(b" ", 2)[1]] = None
        raise error

    def rows(self, results: Sequence[PGresult], index: int) -> list[Any]:
        """The rows of one statement's result, as named tuples."""
        result = results[index]
        if result.status != _ROWS:
            raise psycopg.ProgrammingError("the statement did not return rows")
        tx = self._state.tx
        tx.set_pgresult(result)
        names = tuple(map(result.fname, range(result.nfields)))
        make_row = _row_class(names, tx.encoding)._make
        rows: list[Any] = tx.load_rows(0, result.ntuples, make_row)
        return rows
