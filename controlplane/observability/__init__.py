"""Metrics for ops: the DB exporter and the processes' own request/task metrics.

- `families`: the catalogue of exported series (names, help, labels);
- `places`: org and cloud lookups that give every series its `prefecture` label;
- `capacity`, `activity`, `ledger`: read the latest DB state into metric families;
- `collector`: the prometheus_client Collector tying them together (never calls a provider);
- `fingerprint` + `cache`: render once per change, serve cached (and gzipped) bytes;
- `server`: the WSGI app and server of `yunguan exporter`;
- `process`: HTTP request and task counters of the API and worker processes
  (prometheus_client multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set).

Called by `controlplane.bootstrap` (which builds the exporter), the CLI, `api/`
(the /metrics route and the request middleware) and the worker's task table.
"""
