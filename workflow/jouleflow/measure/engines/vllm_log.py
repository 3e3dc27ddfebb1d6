"""What vLLM says about its effective configuration in its server log, for run.json provenance.

The engine core logs its whole config once at start (vllm/v1/engine/core.py):

    "Initializing a V1 LLM engine (v%s) with config: %s"

where the config's __str__ (vllm/config/vllm.py) holds `enforce_eager=...` and
`compilation_config={...}`, the CompilationConfig's repr: a Python dict (str() of pydantic's
dump), with enums as `<CUDAGraphMode.FULL_AND_PIECEWISE: (2, 1)>`. The engine config also logs
"Asynchronous scheduling is enabled." / "... disabled." (vllm/config/vllm.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

_INIT = re.compile(r"Initializing a V1 LLM engine \(v(?P<version>[^)]*)\) with config: (?P<config>.*)$")
_ASYNC = re.compile(r"Asynchronous scheduling is (enabled|disabled)\.")
_ENUM = re.compile(r"<\w+\.(\w+): [^<>]*>")  # <CompilationMode.VLLM_COMPILE: 3> -> 'VLLM_COMPILE'
# The settings recorded: the CUDA-graph capture sizes and what decides whether graphs are used.
COMPILATION_KEYS = ("mode", "cudagraph_mode", "max_cudagraph_capture_size", "cudagraph_capture_sizes")


def _balanced(text: str, start: int) -> str | None:
    """The {...} that opens at text[start], quotes respected; None when it does not close."""
    depth, quote, i = 0, None, start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1  # an escaped character
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    return None


def _value(text: str, key: str) -> Any:
    """The literal after `'key': ` in a dict's text (a list, number, string or None), or None."""
    m = re.search(rf"'{key}': ", text)
    if m is None:
        return None
    rest = text[m.end() :]
    token = _balanced(rest, 0) if rest[:1] in "[{(" else re.match(r"[^,}]*", rest).group(0)  # type: ignore[union-attr]
    try:
        return ast.literal_eval(token) if token is not None else None
    except (ValueError, SyntaxError):
        return None


def parse_compilation(line_config: str) -> dict[str, Any] | None:
    """COMPILATION_KEYS (+ enforce_eager) from the config text of the "Initializing" line."""
    at = line_config.find("compilation_config={")
    if at < 0:
        return None
    body = _balanced(line_config, at + len("compilation_config="))
    if body is None:
        return None
    body = _ENUM.sub(lambda m: repr(m.group(1)), body)
    out: dict[str, Any] = {key: _value(body, key) for key in COMPILATION_KEYS}
    eager = re.search(r"\benforce_eager=(True|False)\b", line_config)
    out["enforce_eager"] = None if eager is None else eager.group(1) == "True"
    return out


def effective_settings(log_text: str) -> dict[str, Any]:
    """{"engine_version", "compilation", "async_scheduling"} from a vLLM server log; null for each one
    not found (an older or newer vLLM that logs otherwise, a server that died before it logged)."""
    version = compilation = async_scheduling = None
    for line in log_text.splitlines():
        m = _INIT.search(line)
        if m and compilation is None:
            version, compilation = m.group("version"), parse_compilation(m.group("config"))
        a = _ASYNC.search(line)
        if a:
            async_scheduling = a.group(1) == "enabled"  # the engine core's line comes last
    return {"engine_version": version, "compilation": compilation, "async_scheduling": async_scheduling}


def read_effective_settings(path: Path) -> dict[str, Any] | None:
    """effective_settings of the log at `path`; None when there is no log."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return effective_settings(text)
