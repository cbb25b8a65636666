"""Storage of the migration ledger (上云台账) and of the observed cloud inventory.

`records` loads the ledger into the domain's canonical records (a `Catalog`),
`writer` writes a planned import, `importer`/`exporter` move spreadsheets in
and out, `systems` and `rooms` run the single-object use cases (transitions,
retirement), `progress` aggregates in SQL, and `inventory` holds what the
clouds reported. Everything runs inside the caller's unit of work; nothing
here commits.
"""
