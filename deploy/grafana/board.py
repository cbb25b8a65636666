"""The dashboard builder the generator uses: a Board of panels with consistent
ids, grid positions, thresholds and datasource (deploy/grafana/generate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
GRANT_THRESHOLDS = [(None, "green"), (0.85, "orange"), (0.95, "red")]
USE_THRESHOLDS = [(None, "green"), (0.9, "red")]


def _thresholds(steps: list[tuple[float | None, str]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


class Board:
    """Lays panels out left to right, 24 columns wide."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict[str, Any]] = []
        self.variables: list[dict[str, Any]] = [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            }
        ]
        self._x = self._y = self._row_h = 0

    def variable(
        self, name: str, query: str, *, label: str, default: str = "", multi: bool = False
    ) -> None:
        var: dict[str, Any] = {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": f"{name}-values"},
            "refresh": 2,
            "sort": 1,
            "multi": multi,
            "includeAll": multi,
            "current": {"text": default, "value": default} if default else {},
            "hide": 0,
        }
        if multi:
            var["allValue"] = ".*"
        self.variables.append(var)

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        w: int = 12,
        h: int = 8,
        unit: str = "short",
        thresholds: list[tuple[float | None, str]] | None = None,
        table: bool = False,
        description: str = "",
    ) -> None:
        if self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        defaults: dict[str, Any] = {"unit": unit}
        if thresholds:
            defaults["thresholds"] = _thresholds(thresholds)
            defaults["color"] = {"mode": "thresholds"}
        if unit == "percentunit":
            defaults.update(min=0, max=1)
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": _options(kind),
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                        "instant": table or kind in {"stat", "bargauge", "gauge"},
                        "range": not table and kind not in {"stat", "bargauge", "gauge"},
                        "format": "table" if table else "time_series",
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
                **({"transformations": [{"id": "merge", "options": {}}]} if table else {}),
            }
        )
        self._x += w
        self._row_h = max(self._row_h, h)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["yunguan"],
            "timezone": "browser",
            "editable": True,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "1m",
            "time": {"from": "now-7d", "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [],
            "panels": self.panels,
        }


def _options(kind: str) -> dict[str, Any]:
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    if kind == "bargauge":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"]},
            "orientation": "horizontal",
            "displayMode": "gradient",
        }
    if kind == "timeseries":
        return {"legend": {"displayMode": "table", "placement": "right"}}
    return {}


def ratio(num: str, den: str, selector: str) -> str:
    return f"yunguan_{num}{{{selector}}} / yunguan_{den}{{{selector}}}"
