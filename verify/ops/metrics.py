"""`GET /metrics`: Prometheus text format (0.0.4), written by hand: the breakers, the
maintenance flag, answers by source and status, gaps recorded by reason, probe failures
and the intake journal's entries by state."""

from __future__ import annotations

from aiohttp import web

from fallback.outages import System
from verify.keys import JOURNALED_INTAKE, RESILIENCE


def _line(name: str, value: float, **labels: str) -> str:
    if not labels:
        return f"{name} {value}"
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {value}"


async def journal_lines(app: web.Application) -> list[str]:
    """`invoice_journal_entries{state=...}`: a quarantined entry above zero is what an
    operator alerts on."""
    counts = await app[JOURNALED_INTAKE].journal.counts()
    return ["# TYPE invoice_journal_entries gauge",
            *(f'invoice_journal_entries{{state="{state}"}} {n}'
              for state, n in sorted(counts.items()))]


async def metrics(request: web.Request) -> web.Response:
    resilience = request.app[RESILIENCE]
    lines = ["# TYPE invoice_breaker_state gauge"]
    guards = (resilience.primary, resilience.replica_guard)
    for guard in guards:
        for state in ("closed", "open", "half_open"):
            lines.append(_line("invoice_breaker_state", int(guard.breaker.state == state),
                               system=str(guard.system), state=state))
    for name in ("failures", "rejected", "opened"):
        lines.append(f"# TYPE invoice_breaker_{name}_total counter")
        lines.extend(_line(f"invoice_breaker_{name}_total",
                           getattr(g.breaker.counters, name), system=str(g.system))
                     for g in guards)
    lines.append("# TYPE invoice_maintenance_active gauge")
    lines.append(_line("invoice_maintenance_active",
                       int(resilience.outages.active(System.PRIMARY) is not None)))
    m = resilience.metrics
    lines.append("# TYPE invoice_answers_total counter")
    lines.extend(_line("invoice_answers_total", n, source=src, status=status)
                 for (src, status), n in sorted(m.answers.items()))
    lines.append("# TYPE invoice_gaps_recorded_total counter")
    lines.extend(_line("invoice_gaps_recorded_total", n, reason=r)
                 for r, n in sorted(m.gaps.items()))
    lines.append("# TYPE invoice_probe_failures_total counter")
    lines.extend(_line("invoice_probe_failures_total", n, system=s)
                 for s, n in sorted(m.probe_failures.items()))
    lines.extend(await journal_lines(request.app))
    return web.Response(text="\n".join(lines) + "\n",
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "no-store"})
