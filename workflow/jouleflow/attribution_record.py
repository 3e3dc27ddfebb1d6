"""attribution.json (`jouleflow attribute`) and its per-request Parquet: the one home of their shape.

`analysis.attribution` builds the document; the CLI writes it through `AttributionRecord`, and every
reader (the summary table's headline columns, the figures) reads it back through it, by attribute,
never by string keys. A file with a missing or unknown top-level key is refused with its path and the
key; a file newer than this code is refused. Imports no layer (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from jouleflow.records import RecordError, _check_keys, _mapping, check_version
from jouleflow.traces import json_text, read_json, write_text

ATTRIBUTION_JSON = "attribution.json"
REQUEST_ENERGY_PARQUET = "request_energy.parquet"
ATTRIBUTION_SCHEMA_VERSION = 1

# Per request: its share of the steady window's energy (analysis.attribution.per_request), in J.
REQUEST_ENERGY = pa.schema(
    [
        ("request_id", pa.int64()),
        ("energy_j", pa.float64()),  # dynamic + static = prefill + decode + static
        ("dynamic_j", pa.float64()),
        ("static_j", pa.float64()),
        ("prefill_j", pa.float64()),
        ("decode_j", pa.float64()),
        ("decode_tokens_in_window", pa.float64()),
        ("prefill_tokens_in_window", pa.float64()),
        ("residence_s", pa.float64()),
        ("whole_in_window", pa.bool_()),  # its whole life in the window: its energy is complete
    ]
)


def _why_unresolved(fit: dict[str, Any]) -> str | None:
    if not fit.get("identifiable"):
        return fit.get("reason")
    if "resolved" not in fit:
        return "recorded before coefficients were checked for resolution"
    return (
        "; ".join(f"{k} not resolved ({why})" for k, why in (fit.get("not_resolved") or {}).items()) or None
    )


@dataclass(frozen=True)
class Costs:
    """J per prefill and per decode token (with standard errors) from the fit the attribution used:
    s fixed to the idle baseline when identifiable with a and b resolved (positive, 95 % interval
    above 0), else the free fit with a, b and s resolved; all null with `note` when neither is."""

    j_per_prefill_token: float | None = None
    j_per_prefill_token_se: float | None = None
    j_per_decode_token: float | None = None
    j_per_decode_token_se: float | None = None
    fit: str | None = None  # fixed_static | free
    note: str | None = None


@dataclass(frozen=True)
class AttributionRecord:
    """`attribution.json`: one LLM run's steady-window energy split (method: docs/attribution.md).

    `not_attributed` says why nothing was attributed (a failed or infeasible run, no steady window:
    `jouleflow attribute --allow-empty`); every other section is then null. The sections stay
    mappings as analysis.attribution writes them; the headline figures are typed properties here.
    """

    run_dir: str
    not_attributed: str | None = None
    window: dict[str, Any] | None = None
    interval_s: float | None = None
    n_intervals: int | None = None
    residence_from: str | None = None
    token_sources: dict[str, str] | None = None
    thresholds: dict[str, Any] | None = None
    diagnosis: dict[str, Any] | None = None
    energy_j: float | None = None
    static_dynamic: dict[str, Any] | None = None
    fit: dict[str, Any] | None = None
    requests: dict[str, Any] | None = None
    missing: dict[str, str] = field(default_factory=dict)
    schema_version: int = ATTRIBUTION_SCHEMA_VERSION

    VERSION_KEY: ClassVar[str] = "attribution_schema_version"

    @classmethod
    def not_computed(cls, run_dir: str | Path, reason: str) -> AttributionRecord:
        return cls(run_dir=str(run_dir), not_attributed=reason)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = ATTRIBUTION_JSON) -> AttributionRecord:
        version = check_version(_mapping(doc, source), source, ATTRIBUTION_SCHEMA_VERSION, cls.VERSION_KEY)
        names = {f.name for f in fields(cls)} - {"schema_version"}
        _check_keys(doc, source, names | {cls.VERSION_KEY}, ("run_dir",))
        for key in (
            "window",
            "token_sources",
            "thresholds",
            "diagnosis",
            "static_dynamic",
            "fit",
            "requests",
        ):
            if doc.get(key) is not None and not isinstance(doc[key], Mapping):
                raise RecordError(f"{source}: {key!r} must be an object or null, got {doc[key]!r}")
        values = {k: v for k, v in doc.items() if k != cls.VERSION_KEY}
        if values.get("missing") is None:
            values.pop("missing", None)
        return cls(**values, schema_version=version)

    @classmethod
    def read(cls, path: str | Path) -> AttributionRecord:
        return cls.from_dict(read_json(path), str(path))

    def to_dict(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "schema_version"}
        return {**doc, self.VERSION_KEY: self.schema_version}

    def write(self, path: str | Path) -> None:
        write_text(json_text(self.to_dict()), path)

    # --- the headline figures (the summary table's columns) -------------------------------------

    @property
    def static_share(self) -> float | None:
        """Idle baseline x window / window energy; null without a baseline (static_share_note says why)."""
        return (self.static_dynamic or {}).get("static_share")

    @property
    def static_share_note(self) -> str | None:
        if self.static_share is not None:
            return None
        if self.not_attributed:
            return self.not_attributed
        if self.static_dynamic is None:
            return self.missing.get("energy", "no static/dynamic split")
        return self.static_dynamic.get("reason") or "no static share (zero window energy)"

    def costs(self) -> Costs:
        if self.not_attributed or not self.fit:
            return Costs(note=self.not_attributed or self.missing.get("energy", "no fit"))
        for name in ("fixed_static", "free"):  # analysis.attribution_fit.choose_fit's rule
            fit = self.fit.get(name) or {}
            if fit.get("identifiable") and fit.get("resolved"):
                return Costs(
                    fit["a_j_per_prefill_token"],
                    fit["a_se"],
                    fit["b_j_per_decode_token"],
                    fit["b_se"],
                    name,
                )
        reasons = {name: _why_unresolved(self.fit.get(name) or {}) for name in ("fixed_static", "free")}
        return Costs(note="; ".join(f"{name}: {why}" for name, why in reasons.items() if why))

    @property
    def diagnosis_label(self) -> str | None:
        return (self.diagnosis or {}).get("primary")

    def split_shares(self) -> dict[str, float | None]:
        """The per-request attribution's static / prefill / decode joules as shares of the window
        energy (they sum to 1 less the unattributed share); null when nothing was attributed, and
        prefill / decode null when the costs were not resolved."""
        req, total = self.requests or {}, self.energy_j
        parts = {k: req.get(f"{k}_j") for k in ("static", "prefill", "decode")}
        if not total or parts["static"] is None:
            return dict.fromkeys(parts)
        # prefill and decode stay null when no fit resolved the token costs (requests.weighting says so)
        return {k: None if v is None else float(v) / total for k, v in parts.items()}

    def summary_columns(self) -> dict[str, Any]:
        """The row fields of the campaign summary table (traces.SUMMARY's attribution columns)."""
        costs = self.costs()
        shares = self.split_shares()
        return {
            "static_share": self.static_share,
            "static_share_note": self.static_share_note,
            "split_static_share": shares["static"],
            "split_prefill_share": shares["prefill"],
            "split_decode_share": shares["decode"],
            "j_per_prefill_token": costs.j_per_prefill_token,
            "j_per_prefill_token_se": costs.j_per_prefill_token_se,
            "j_per_decode_token": costs.j_per_decode_token,
            "j_per_decode_token_se": costs.j_per_decode_token_se,
            "token_cost_fit": costs.fit,
            "token_cost_note": costs.note,
            "diagnosis": self.diagnosis_label,
        }


# The summary columns when a run has no attribution.json (diffusion, or not attributed), with why.
def no_attribution_columns(reason: str) -> dict[str, Any]:
    record = AttributionRecord.not_computed("", reason)
    return record.summary_columns()
