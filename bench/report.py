"""Issue 8's table from the figures `bench/run.py` collects: sidecar vs direct, and LiteLLM when it was measured.

"Added" figures are the proxy's minus the direct call's from the same interleaved rounds; verdicts judge the
sidecar against the issue's targets. The floor column is `floor_proxy.py`, a bare aiohttp relay doing none of the
sidecar's work: the least a proxy on this stack adds. LiteLLM's column is measured the same way (never quoted), and the last column
says how the sidecar compares with it.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, str, str, str]
"""figure, sidecar, floor (a bare aiohttp relay), LiteLLM (or "—"), sidecar vs LiteLLM, target, verdict"""


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _added(r: dict[str, Any], name: str, side: str, key: str) -> float:
    return r[name][side][key] - r[name]["direct"][key]


def _latency(r: dict[str, Any], name: str, side: str, key: str) -> str:
    return f"+{_added(r, name, side, key):.2f} ms ({r[name]['direct'][key]:.2f} → {r[name][side][key]:.2f})"


def _times(sidecar: float, litellm: float, *, lower_is_better: bool = True) -> str:
    """"12× less" / "25× more": how many times better the sidecar's figure is than LiteLLM's."""
    if sidecar <= 0 or litellm <= 0:
        return "—"
    ratio = litellm / sidecar if lower_is_better else sidecar / litellm
    return f"{ratio:.0f}× {'less' if lower_is_better else 'more'}" if ratio >= 2 else f"{ratio:.1f}×"


def table(r: dict[str, Any]) -> tuple[list[Row], list[str]]:
    ll = "litellm" in r["pt_1"]
    fl = "floor" in r["pt_1"]
    rows: list[Row] = []
    floors: list[str] = []

    def floor(text: str) -> None:
        """The floor's figure for the row `add` makes next (rows without one show "—")."""
        floors.append(text)

    def add(figure: str, sidecar: str, litellm: str, versus: str, target: str, ok: bool | None) -> None:
        rows.append((figure, sidecar, floors.pop() if floors else "—", litellm if ll else "—",
                     versus if ll else "—", target, "—" if ok is None else _verdict(ok)))

    for name, label, limit in (("pt_1", "non-streamed pass-through", 0.5),
                               ("tr_1", "non-streamed translated (OpenAI client → Anthropic)", 1.0)):
        a = _added(r, name, "sidecar", "p50")
        if fl:
            floor(f"+{_added(r, name, 'floor', 'p50'):.2f} ms")
        add(f"added median latency, {label}, 1 in flight", _latency(r, name, "sidecar", "p50"),
            _latency(r, name, "litellm", "p50") if ll else "", _times(a, _added(r, name, "litellm", "p50")) if ll else "",
            f"≤ {limit} ms", a <= limit)
    a = _added(r, "pt_16", "sidecar", "p99")
    if fl:
        floor(f"+{_added(r, 'pt_16', 'floor', 'p99'):.2f} ms")
    add("added p99 latency, 16 in flight, pass-through", _latency(r, "pt_16", "sidecar", "p99"),
        _latency(r, "pt_16", "litellm", "p99") if ll else "",
        _times(a, _added(r, "pt_16", "litellm", "p99")) if ll else "", "≤ 4 ms", a <= 4)
    d, s = r["pt_32"]["direct"]["rps"], r["pt_32"]["sidecar"]["rps"]
    lrps = r["pt_32"]["litellm"]["rps"] if ll else 0.0
    if fl:
        floor(f"{r['pt_32']['floor']['rps']:,.0f} req/s")
    # The target is relative ("≥ 25× LiteLLM's in the same run"); 2,500 req/s is its estimate of that
    # here, the verdict's yardstick only when LiteLLM was not measured.
    add("throughput, non-streamed pass-through, 32 in flight", f"{s:,.0f} req/s (direct {d:,.0f})",
        f"{lrps:,.0f} req/s", _times(s, lrps, lower_is_better=False),
        "≥ 25× LiteLLM" + (f" ({25 * lrps:,.0f} req/s)" if ll else " (≈ 2,500 req/s)"),
        s >= 25 * lrps if ll else s >= 2500)
    a = _added(r, "tr_ttft", "sidecar", "ttft_p50")
    if fl:
        floor(f"+{_added(r, 'tr_ttft', 'floor', 'ttft_p50'):.2f} ms")
    add("added time to first byte, streamed translated, 1 in flight (median)",
        _latency(r, "tr_ttft", "sidecar", "ttft_p50"), _latency(r, "tr_ttft", "litellm", "ttft_p50") if ll else "",
        _times(a, _added(r, "tr_ttft", "litellm", "ttft_p50")) if ll else "", "≤ 1 ms", a <= 1)
    c, cp = r["cpu_tr"]["sidecar"]["per_chunk_us"], r["cpu_pt"]["sidecar"]["per_chunk_us"]
    lc = r["cpu_tr"]["litellm"]["per_chunk_us"] if ll else 0.0
    if fl:
        floor(f"{r['cpu_tr']['floor']['per_chunk_us']:.0f} µs "
              f"(pass-through {r['cpu_pt']['floor']['per_chunk_us']:.0f} µs)")
    add("proxy CPU per streamed chunk, translated", f"{c:.0f} µs (pass-through {cp:.0f} µs)",
        f"{lc:.0f} µs (pass-through {r['cpu_pt']['litellm']['per_chunk_us']:.0f} µs)" if ll else "",
        _times(c, lc), "≤ 20 µs", c <= 20)
    for name, label in (("s128_pt", "pass-through"), ("s128_tr", "translated")):
        ratio = r[name]["sidecar"]["p99"] / r[name]["direct"]["p99"]
        lratio = r[name]["litellm"]["p99"] / r[name]["direct"]["p99"] if ll else 0.0
        if fl:
            floor(f"{r[name]['floor']['p99'] / r[name]['direct']['p99']:.2f}×")
        add(f"128 streams at once (50 chunks, 5 ms apart), {label}: p99 total vs direct",
            f"{ratio:.2f}× ({r[name]['direct']['p99']:.0f} → {r[name]['sidecar']['p99']:.0f} ms)",
            f"{lratio:.2f}× ({r[name]['litellm']['p99']:.0f} ms)" if ll else "", "", "≤ 1.3×", ratio <= 1.3)
    idle = r["rss_idle_mb"]["sidecar"]
    peak = max(r["s128_pt"]["sidecar"]["peak_rss_mb"], r["s128_tr"]["sidecar"]["peak_rss_mb"])
    lidle = r["rss_idle_mb"].get("litellm", 0.0)
    lpeak = max(r["s128_pt"]["litellm"]["peak_rss_mb"], r["s128_tr"]["litellm"]["peak_rss_mb"]) if ll else 0.0
    if fl:
        floor(f"{r['rss_idle_mb']['floor']:.0f} MB / "
              f"{max(r['s128_pt']['floor']['peak_rss_mb'], r['s128_tr']['floor']['peak_rss_mb']):.0f} MB")
    add("resident memory, idle (just started) / 128 concurrent streams", f"{idle:.0f} MB / {peak:.0f} MB",
        f"{lidle:.0f} MB / {lpeak:.0f} MB", _times(peak, lpeak), "≤ 60 MB / ≤ 120 MB", idle <= 60 and peak <= 120)
    add("resident memory after a 10-minute soak", "`bench/soak.py`", "not measured", "", "flat", None)
    st = r["startup_s"]["sidecar"]["median"]
    lst = r["startup_s"].get("litellm", {}).get("median", 0.0)
    add("start → health answering (median)", f"{st:.2f} s", f"{lst:.1f} s", _times(st, lst), "≤ 0.8 s", st <= 0.8)

    pt32 = r["pt_32"]
    notes = [
        "floor: `bench/floor_proxy.py`, a bare aiohttp relay on the same stack (uvloop, one pooled session) that "
        "forwards bytes and does none of the sidecar's work (keys, routing, translation, metering, recording); "
        "for translated rows it relays the provider's own format" + (
            f"; its CPU per non-streamed request {pt32['floor']['cpu_per_req_ms']:.2f} ms (@32)" if fl else ""),
        f"sidecar CPU per non-streamed request: pass-through {pt32['sidecar']['cpu_per_req_ms']:.2f} ms (@32), "
        f"translated {r['tr_1']['sidecar']['cpu_per_req_ms']:.2f} ms (@1); per 10-chunk stream (translated) "
        f"{r['cpu_tr']['sidecar']['per_stream_ms']:.2f} ms",
        f"sidecar resident memory after the non-streamed load: {r['rss_after_load_mb']:.0f} MB; "
        f"at the end: {r['rss_end_mb']:.0f} MB",
        "throughput per round (req/s): " + ", ".join(f"{side} {pt32[side]['rps_rounds']}" for side in pt32),
    ]
    if ll:
        notes.append(f"LiteLLM {r['litellm_version']} (its own virtualenv, one uvicorn worker, no database or "
                     f"callbacks, local price map): CPU per non-streamed request {pt32['litellm']['cpu_per_req_ms']:.2f}"
                     f" ms (@32); it served {r['litellm_share']} of the requests the other sides did per round")
    else:
        notes.append("LiteLLM not measured in this run (`--litellm` adds it)")
    errs = sum(v[s]["errors"] for v in r.values() if isinstance(v, dict) and "direct" in v for s in v)
    if errs:
        notes.append(f"!! {errs} failed requests in the run (see the log above)")
    return rows, notes


def render(rows: list[Row]) -> str:
    lines = ["| figure | sidecar | floor: bare aiohttp relay | LiteLLM | sidecar vs LiteLLM | target | |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
