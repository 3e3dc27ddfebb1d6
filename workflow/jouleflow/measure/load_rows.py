"""The load's results as trace rows: traces.REQUESTS and traces.TOKENS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jouleflow.measure.load import RequestResult


def request_rows(results: Sequence[RequestResult]) -> list[dict[str, Any]]:
    """Rows of traces.REQUESTS (plus `usage_reported`)."""
    return [
        {
            "request_id": r.request_id,
            "t_send": r.t_send,
            "t_first_token": r.t_first_token,
            "t_end": r.t_end,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "ok": r.ok,
            "error": r.error,
            "usage_reported": r.usage_reported,
            "stopped": r.stopped,
            "max_tokens": r.max_tokens,
            "ignore_eos": r.ignore_eos,
            **(r.media or {}),
        }
        for r in results
    ]


def token_columns(results: Sequence[RequestResult]) -> dict[str, list[Any]]:
    """Columns of traces.TOKENS, one row per chunk that carried tokens."""
    rid: list[int] = []
    t: list[float] = []
    n: list[int] = []
    for r in results:
        for ct, cn in zip(r.chunk_t, r.chunk_n, strict=True):
            if cn > 0:
                rid.append(r.request_id)
                t.append(ct)
                n.append(cn)
    return {"request_id": rid, "t": t, "n_tokens": n}
