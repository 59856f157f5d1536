"""Tables and plots of bench results (host side: matplotlib is imported inside, only when plotting)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekd.core.errors import ConfigError

__all__ = ["compare", "load_result"]


def load_result(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable bench result ({e})") from None
    for key in ("cpu_ms_per_audio_s", "latency_ms", "backend", "bundle"):
        if key not in d:
            raise ConfigError(f"{path}: not an edgekd bench result (no {key!r}); make one with `edgekd bench BUNDLE --wav F --json OUT`")
    return d


def _label(r: dict[str, Any]) -> str:
    return f"{r['bundle']} [{r['backend']} {r.get('quantization', '')} {r.get('mode', '')}]".replace(" ]", "]")


def compare(paths: list[Path], plot_dir: Path | None = None) -> tuple[str, list[Path]]:
    """A markdown table of bench results, and PNG plots in ``plot_dir`` when one is given (nothing is written otherwise)."""
    results = [load_result(p) for p in paths]
    rows = ["| model [backend] | CPU ms / audio s | latency p50 ms | p99 ms | max ms | RTF | peak RSS MB | model bytes | MACs / audio s | machine |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lat = r["latency_ms"]
        mach = r.get("machine", {})
        rows.append(f"| {_label(r)} | {r['cpu_ms_per_audio_s']:.2f} | {lat['p50']:.3f} | {lat['p99']:.3f} | {lat['max']:.3f} | "
                    f"{r.get('rtf', float('nan')):.4f} | {r.get('peak_rss_mb', float('nan')):.1f} | {r.get('model_bytes', 0):,} | "
                    f"{r.get('macs_per_audio_s', 0) / 1e6:.1f} M | {mach.get('cpu', '?')} ({mach.get('arch', '?')}) |")
    written = _plots(results, plot_dir) if plot_dir is not None else []
    return "\n".join(rows), written


def _plots(results: list[dict[str, Any]], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError('plots need matplotlib; run: pip install "edgekd[dev]" (or pip install matplotlib)') from None
    out.mkdir(parents=True, exist_ok=True)
    labels = [_label(r) for r in results]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(results) + 1.5))
    ax.barh(labels, [r["cpu_ms_per_audio_s"] for r in results], color="#3b7dd8")
    ax.set_xlabel("CPU ms per second of audio (lower is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    p1 = out / "cpu_ms_per_audio_s.png"
    fig.savefig(p1, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    for r, lab in zip(results, labels, strict=True):
        h = r["latency_ms"].get("histogram")
        if h:
            edges = h["edges_ms"]
            centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
            total = max(1, sum(h["counts"]))
            ax.plot(centers, [c / total for c in h["counts"]], label=lab)
    ax.set_xlabel("per-inference latency (ms)")
    ax.set_ylabel("fraction of inferences")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = out / "latency_distribution.png"
    fig.savefig(p2, dpi=120)
    plt.close(fig)
    return [p1, p2]
