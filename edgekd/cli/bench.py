"""``edgekd bench``: measure a bundle on this machine; ``edgekd bench compare``: tables and plots of results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.board import AcceptNewOpt, IdentityOpt, KnownHostsOpt, PortOpt, RemoteDirOpt, ssh_target
from edgekd.cli.common import friendly_errors, notice
from edgekd.core.fsutil import write_json

__all__ = ["bench_cmd"]


@friendly_errors
def bench_cmd(
    targets: Annotated[list[str], typer.Argument(help="BUNDLE to measure, or: compare RESULT.json RESULT.json ...", show_default=False)],
    wav: Annotated[Optional[Path], typer.Option("--wav", help="WAV to stream (at least one inference window long).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result JSON here.")] = None,
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnx or litert.")] = "auto",
    mode: Annotated[str, typer.Option(help="auto, stream (streaming-state model) or whole (whole window per inference).")] = "auto",
    threads: Annotated[int, typer.Option(min=1, max=64, help="Inference threads (1 = the always-on setting).")] = 1,
    repeats: Annotated[int, typer.Option(min=1, max=1000, help="Streaming passes over the WAV; medians are reported.")] = 5,
    plots: Annotated[Optional[Path], typer.Option(help="compare: also draw PNG plots into this folder (needs matplotlib).")] = None,
    remote: Annotated[Optional[str], typer.Option("--remote", help="Run on this board (user@host) instead: BUNDLE is a local bundle folder "
                                                  "(uploaded for the run) or `current` (what is deployed). Needs `edgekd deploy` first.")] = None,
    results_dir: Annotated[Path, typer.Option(help="--remote: the JSON is also saved under RESULTS_DIR/<host>/.")] = Path("bench/results"),
    remote_dir: RemoteDirOpt = "~/edgekd",
    port: PortOpt = None,
    identity: IdentityOpt = None,
    known_hosts: KnownHostsOpt = None,
    accept_new_host_key: AcceptNewOpt = False,
) -> None:
    """Measure BUNDLE streaming --wav exactly as `edgekd run` does: CPU ms per audio second, per-inference
    latency p50/p90/p99/max, real-time factor, peak RSS, model bytes, params and MACs (from the ONNX graph),
    backend, threads and machine facts. Runs with the runtime only (no torch).

    `edgekd bench compare A.json B.json ...` prints a markdown table; with --plots DIR it also draws PNG plots there.
    """
    from edgekd.cli.common import check_writable

    check_writable(json_out, "--json")

    from edgekd.core.errors import ConfigError

    if targets and targets[0] == "compare":
        from edgekd.bench.compare import compare

        if len(targets) < 2:
            raise ConfigError("give at least one result file: edgekd bench compare A.json [B.json ...]")
        table, written = compare([Path(t) for t in targets[1:]], plots)
        print(table)
        for p in written:
            notice(f"wrote {p}")
        return
    if len(targets) != 1:
        raise ConfigError("give one BUNDLE to measure (or: edgekd bench compare A.json B.json)")
    if wav is None:
        raise ConfigError("give the audio to stream: --wav FILE")
    if remote is not None:
        from firmware_bridge.remote_bench import bench_remote, host_slug

        res = bench_remote(ssh_target(remote, port, identity, known_hosts, accept_new_host_key), targets[0], wav, remote_dir,
                           backend=backend, mode=mode, threads=threads, repeats=repeats)
        name = f"{Path(res['bundle']).name or 'current'}-{res['backend']}-{res['mode']}.json"
        saved = results_dir / host_slug(remote) / name
        write_json(saved, res)
        notice(f"wrote {saved}")
    else:
        from edgekd.bench.stream import bench_stream
        from edgekd.core.progress import Progress

        with Progress("bench", repeats, "pass") as bar:
            res = bench_stream(targets[0], wav, backend=backend, threads=threads, repeats=repeats, notice=notice, mode=mode,
                               progress=bar.callback())
    if json_out is not None:
        write_json(json_out, res)
    lat = res["latency_ms"]
    notice(f"{res['bundle']} [{res['backend']} {res['quantization']} {res['mode']}, {res['threads']} thread(s)]: "
           f"{res['cpu_ms_per_audio_s']:.2f} CPU ms per audio s, latency p50 {lat['p50']:.3f} ms p99 {lat['p99']:.3f} ms, "
           f"RTF {res['rtf']:.4f}, peak RSS {res['peak_rss_mb']:.1f} MB"
           + (f"; verifier {res['verifier_calls_per_audio_hour']:.0f} calls per audio hour (in the CPU, not in the latency)"
              if res.get("verifier_calls_per_audio_hour") else ""))
    print(f"{res['cpu_ms_per_audio_s']:.3f}")
