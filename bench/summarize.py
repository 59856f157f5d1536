"""Write bench/README.md from the committed result files (so every number there comes from a file).

    python bench/summarize.py        # run by `make bench` after the measurements
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _load(p: Path) -> dict:
    return json.loads(p.read_text())


def _machine(d: dict) -> str:
    m = d.get("machine", {})
    libs = ", ".join(f"{k} {v}" for k, v in sorted(m.get("libraries", {}).items()))
    return f"{m.get('cpu', '?')} ({m.get('arch', '?')}, {m.get('cores', '?')} cores), Python {m.get('python', '?')}; {libs}; {m.get('date', '?')}"


def _realdev_sections() -> list[str]:
    """Real speech: the shipped bundles (and the espeak-only ones shipped before) on real people."""
    out: list[str] = []
    for name, title in (("realdev.json", "Real speech: the shipped KWS bundles on real people (`make realdev`)"),
                        ("realdev_espeak_bundles.json", "Real speech: the espeak-only bundles shipped before the voice bank")):
        rd = RESULTS / name
        if rd.is_file():
            d = _load(rd)
            out += [f"## {title}", "",
                    f"Speech Commands v0.02 12-class test set, dev half of its speakers ({d['results'][0]['n']} clips; "
                    "`../shared/realdev`, measurement only: nothing is trained on it). Top-1 accuracy and recall per label (%), "
                    "through ONNX Runtime:", "", d["table_md"], "", f"Measured {d['date']}: {_machine(d)}.", ""]
    return out


def _voices_section() -> list[str]:
    """The voices study."""
    out: list[str] = []
    vs = RESULTS / "voices_study.json"
    if vs.is_file():
        d = _load(vs)
        steps = sorted({r["steps"] for r in d["runs"]})
        out += ["## Which voices earn their synthesis time? (`make voices-study`)", "",
                f"The same DS-CNN (no teacher) trained on subsets of one voice-bank dataset (`{Path(d['data']).name}`) by engine, "
                f"{'/'.join(str(x) for x in steps)} optimizer steps each (batch 128), with and without rooms; accuracy (%) on the "
                "synthesized test split (held-out voices of every engine) and on real speech (dev speakers).", "", d["table_md"], "",
                f"Measured {d['date']}: {_machine(d)}.", ""]
    return out


def _kd_section() -> list[str]:
    """The distillation study."""
    out: list[str] = []
    kd = RESULTS / "kd_study.json"
    if kd.is_file():
        d = _load(kd)
        out += ["## Does distillation help? (`make kd-study`)", "",
                f"Each student with each teacher and with none (KD T = 3, alpha = 0.7), same data, same steps ({d['epochs']} epochs "
                f"over {d['views']} augmented views with rooms), seeds {sorted({r['seed'] for r in d['runs']})}; accuracy (%) on the "
                "synthesized test split (held-out voices of every engine) and on real speech (dev speakers of Speech Commands, "
                "measurement only), mean +- std over seeds. Teachers: "
                + "; ".join(f"`{k}` = {' + '.join(Path(x).name for x in v)}" for k, v in d["teachers"].items())
                + " (several checkpoints: the mean of their logits). The last rows score each teacher itself.", "",
                d["table_md"], "", f"Data: `{d['data']}`. Command: `{d['command']}`. Machine: {_machine(d)}."]
        out += ([f"Note: {d['realdev_window_note']}.", ""] if "realdev_window_note" in d else [""])
    return out


def _probe_sections() -> list[str]:
    """One-seed probes beside the study (``kd_*_probe.json`` with a table): what they changed, their table, the command."""
    out: list[str] = []
    for pr in sorted(RESULTS.glob("kd_*_probe.json")):
        d = _load(pr)
        if "table_md" not in d:
            continue
        out += [f"### Probe: {d.get('what', pr.stem)} (`{pr.name}`)", "", d["table_md"], "",
                f"Command: `{d['command']}`. Machine: {_machine(d)}.", ""]
    return out


def _side_by_side(mdir: Path) -> list[str]:
    """Every shipped bundle side by side."""
    out: list[str] = []
    sbs = mdir / "side_by_side.json"
    if sbs.is_file():
        d = _load(sbs)
        out += [f"### Every shipped bundle side by side (`bench/side_by_side.py`, {d['rounds']} alternating rounds, one process)", "",
                "| bundle | mode | quantization | stride ms | CPU ms per audio s | MACs per audio s |", "|---|---|---|---|---|---|"]
        out += [f"| `{r['bundle']}` | {r['mode']} | {r['quantization']} | {r['stride_ms']} | {r['cpu_ms_per_audio_s']:.2f} | "
                f"{r['macs_per_audio_s'] / 1e6:.1f} M |" for r in d["rows"]]
        out += ["", f"Measured: {_machine(d['provenance'])}.", ""]
    return out


def _paired(d: dict[str, Any]) -> str:
    """The per-round paired ratio, where the result file has it (files from before 2026-12-02 do not)."""
    v = d.get("ratio_edgekd_to_oww_model_predict_paired_median")
    return "" if v is None else f"; paired round by round, median: {v:.3f}"


def _peers(mdir: Path) -> list[str]:
    """edgekd against openWakeWord, one section per measured bundle."""
    out: list[str] = []
    for peer in sorted(mdir.glob("peer_openwakeword*.json")):
        d = _load(peer)
        e, o, f = d["edgekd"], d["openwakeword"], d["floor"]
        prof = e["profile_cpu_ms_per_audio_s"]
        out += [f"### edgekd `{e['bundle']}` ({e.get('backend', 'onnx')}, {e.get('mode', 'whole')}) vs openWakeWord {o['version']} `{o['wakeword_model']}`", "",
                "| pipeline | CPU ms per second of audio |", "|---|---|",
                f"| openWakeWord, its own `Model.predict` | {o['cpu_ms_per_audio_s_model_predict']:.2f} |",
                f"| openWakeWord, its 3 ONNX models driven directly | {o['cpu_ms_per_audio_s_onnx_direct']:.2f} |",
                f"| edgekd `{e['bundle']}`, stride {e['stride_ms']} ms | {e['cpu_ms_per_audio_s']:.2f} |", "",
                f"Ratio edgekd / openWakeWord `Model.predict`: **{d['ratio_edgekd_to_oww_model_predict']:.3f}** "
                f"(goal <= {d['goal_ratio']}){_paired(d)}; / ONNX direct: {d['ratio_edgekd_to_oww_onnx_direct']:.3f}.",
                f"Where edgekd's time goes (CPU ms per audio s): frontend {prof['frontend']:.2f}, model {prof['model']:.2f}, "
                f"glue and post-processing {prof['glue_and_postprocess']:.2f}.",
                f"Floor: a 1-thread float32 matmul runs at {f['matmul_gmacs_1thread']:.1f} GMAC/s; the student needs "
                f"{f['student_macs_per_audio_s'] / 1e6:.1f} M MACs per audio second = {100 * f['fraction_of_machine']:.2f}% of that "
                f"({f['pure_compute_cpu_ms_per_audio_s']:.2f} ms of pure compute); the runtime spends "
                f"{f['runtime_over_pure_compute']:.1f}x that."]
        rss = d.get("peak_rss_mb")
        if rss:
            def mb(v: float | None) -> str:
                return "-" if v is None else f"{v:.1f} MB"

            out += [f"Peak RSS of one process streaming the same WAV: `edgekd run` on ONNX Runtime {mb(rss.get('edgekd_run_onnx'))}, "
                    f"on LiteRT {mb(rss.get('edgekd_run_litert'))}; openWakeWord `Model.predict` "
                    f"{mb(rss.get('openwakeword_model_predict'))}."]
        out += ["", f"Measured: {_machine(d)}.", ""]
    return out


def _stream_vs_window(mdir: Path) -> list[str]:
    """Whole window against streaming state, per bundle."""
    out: list[str] = []
    for svw in sorted(mdir.glob("stream_vs_window_*.json")):
        d = _load(svw)
        c = d["cpu_ms_per_audio_s"]
        out += [f"### Whole window vs streaming state, `{d['bundle']}` (same bundle, same WAV, one run)", "",
                f"Whole window {c['whole']:.2f}, streaming state {c['stream']:.2f} CPU ms per audio second: "
                f"**{d['speedup_stream_over_whole']:.1f}x** cheaper; MACs per inference {d['macs_per_inference']['whole']:,} vs "
                f"{d['macs_per_inference']['stream']:,}; identical detections: {d['same_detections']}."]
        if "model_calls_ms_per_audio_s" in d:
            m = d["model_calls_ms_per_audio_s"]
            out += ["", f"Where it goes: the model calls alone cost {m['whole']:.2f} vs {m['stream']:.2f} ms per audio second "
                    f"(**{d['speedup_model_calls']:.1f}x**); the log-mel frontend, {d['frontend_cpu_ms_per_audio_s']:.2f} ms, is the same "
                    f"in both modes; the rest is per-chunk Python (ring buffer or stepper, softmax, smoothing)."]
        out.append("")
    return out


def _soaks(mdir: Path) -> list[str]:
    """RSS over long runs."""
    out: list[str] = []
    soaks = sorted(mdir.glob("soak*.json"))
    if soaks:
        out += ["### Soak", ""]
        for soak in soaks:
            d = _load(soak)
            out += [f"- {d['audio_minutes']} minutes of audio through one Stream of `{d['bundle']}` "
                    f"({d['speed_x_realtime']:.0f}x real time): RSS grew {d['rss_growth_mb_minute5_to_end']:+.2f} MB between minute 5 "
                    f"and the end (goal < {d['goal_mb']:.0f} MB); {d['cpu_ms_per_audio_s']:.2f} CPU ms per audio s."]
        out.append("")
    return out


def _machine_section(mdir: Path) -> list[str]:
    """Cost on one machine: quantization table, side by side, openWakeWord peer, whole vs stream, soak."""
    out: list[str] = []
    out += [f"## Cost on `{mdir.name}` (`make bench`)", ""]
    table = mdir / "quantization_table.md"
    if table.is_file():
        out += ["Shipped bundles streaming the same 40 s WAV (held-out voices, keywords every ~1.4 s), 1 thread, "
                "80 ms chunks, medians of 5 passes:", "", table.read_text().strip(), ""]
        pngs = sorted(p.name for p in mdir.glob("*.png"))
        out += [f"![{p}](results/{mdir.name}/{p})" for p in pngs] + [""]
    return out + _side_by_side(mdir) + _peers(mdir) + _stream_vs_window(mdir) + _soaks(mdir)


def _wakeword_section(ww: Path) -> list[str]:
    """One wake-word study result."""
    out: list[str] = []
    d = _load(ww)
    targets = sorted(next(iter(v for v in d["systems"].values() if "frr_at_fa_per_hour" in v))["frr_at_fa_per_hour"], key=float)
    out += [f"## Wake word: openWakeWord hey_jarvis vs distilled students (`{ww.name}`, `{d.get('command', 'make wakeword')}`)", "",
            f"{d['positives']} held-out positives (test espeak voices), {d.get('positives_flite', 0)} by flite and "
            f"{d.get('positives_festival', 0)} by festival; {d['negative_hours']:.2f} h of running speech with confusables by test voices. "
            "FRR (%) at each FA/h (`-`: not reachable); CPU ms per audio second measured side by side on the same 60 s.", "",
            "| system | CPU ms/s | " + " | ".join(f"FRR @ {t} FA/h" for t in targets) + " | flite FRR @ 10 FA/h | festival FRR @ 10 FA/h |",
            "|---|---|" + "---|" * len(targets) + "---|---|"]
    for name, v in d["systems"].items():
        frr = v.get("frr_at_fa_per_hour")
        if frr:
            cells = [("-" if frr.get(t) is None else f"{100 * frr[t]:.1f}") for t in targets]
        else:
            cells = ["same scores as the teacher row"] + [""] * (len(targets) - 1)
        fl = (v.get("frr_flite_voices_at_fa_per_hour") or {}).get("10")
        fe = (v.get("frr_festival_voices_at_fa_per_hour") or {}).get("10")
        out.append(f"| {name} | {v['cpu_ms_per_audio_s']:.2f} | " + " | ".join(cells) + f" | {'-' if fl is None else f'{100 * fl:.1f}'} | "
                   f"{'-' if fe is None else f'{100 * fe:.1f}'} |")
    ordinary = {k: v["ordinary_speech"]["frr_at_fa_per_hour"] for k, v in d["systems"].items() if v.get("ordinary_speech")}
    if ordinary:
        out += ["", f"The same positives against {d['ordinary_negative_hours']:.2f} h of ordinary running speech (no confusable phrases), "
                f"FRR (%) at each FA/h; then, at the {d['target_fa_per_hour']} FA/h threshold: FRR (%) of the flite and festival "
                "phrases, and false accepts per hour on ordinary speech by flite and by festival (where measured):", "",
                "| system | " + " | ".join(f"FRR @ {t} FA/h" for t in targets) + " | flite FRR | festival FRR | FA/h flite speech "
                "| FA/h festival speech |", "|---|" + "---|" * (len(targets) + 4)]
        for name, frr in ordinary.items():
            o = d["systems"][name]["ordinary_speech"]
            other, fa = o.get("frr_other_engines_at_target") or {}, o.get("other_engine_negatives_at_target") or {}
            cells = [("-" if frr.get(t) is None else f"{100 * frr[t]:.1f}") for t in targets]
            cells += [("-" if other.get(e) is None else f"{100 * other[e]:.1f}") for e in ("flite", "festival")]
            cells += [(f"{fa[e]['fa_per_hour']:.1f}" if e in fa else "-") for e in ("flite", "festival")]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", f"Measured: {_machine(d)}. {d.get('limits', '')}", ""]
    return out


def _sed_section() -> list[str]:
    """The sound-event detection study."""
    out: list[str] = []
    sed = RESULTS / "sed.json"
    if sed.is_file():
        d = _load(sed)
        out += ["## Sound-event detection (`sed.json`, `make sed`)", "",
                f"{d['test_soundscapes']} held-out 10 s soundscapes ({d['test_events']} events; recordings never heard in training); "
                f"{d.get('transfer_soundscapes', 0)} unlabelled transfer soundscapes for distillation; alpha {d.get('alpha')}, temperature "
                f"{d.get('temperature')}, epochs: " + ", ".join(f"{k} {v}" for k, v in sorted((d.get("epochs") or {}).items())) + ". "
                "Each model's post-processing is tuned on the validation split, then frozen for the test split.", "",
                "| model | params | MACs per audio s | ONNX bytes | event-F1 | event ER | segment-F1 | segment ER | PSDS1 (alpha_st 0) "
                "| event-F1 through the runtime |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in d["models"].items():
            size = f"{r['onnx_bytes']:,}" if r.get("onnx_bytes") else "-"
            rt = f"{r['runtime']['event_f1']:.3f}" if r.get("runtime") else "-"
            psds = f"{r['psds1']:.3f}" if isinstance(r.get("psds1"), float) else "-"
            if isinstance(r.get("psds1_alpha_st0"), float):
                psds += f" ({r['psds1_alpha_st0']:.3f})"
            out.append(f"| {name} | {r['params']:,} | {r['macs_per_second_of_audio']:,} | {size} | {r['event_f1']:.3f} | {r['event_error_rate']:.2f} | "
                       f"{r['segment_f1']:.3f} | {r['segment_error_rate']:.2f} | {psds} | {rt} |")
        g = d.get("int8_student_vs_teacher")
        if g:
            out += ["", f"The int8 student is {g['event_f1_points_behind']:.1f} event-F1 points behind the teacher with "
                    f"{g['teacher_params_over_student']:.1f}x fewer parameters."]
        out += ["", f"Measured: {_machine(d)}.", ""]
    return out


def _quantization_section() -> list[str]:
    """fp32 vs PTQ vs QAT from the demo."""
    out: list[str] = []
    q = RESULTS / "quantization_demo.json"
    if q.is_file():
        d = _load(q)
        out += ["## fp32 vs PTQ int8 vs QAT int8 (`make demo`)", "",
                "| variant | ORT accuracy | ORT bytes | ORT p50 ms | LiteRT accuracy | TFLite bytes | LiteRT p50 ms |", "|---|---|---|---|---|---|---|"]
        for r in d["rows"]:
            o, li = r["onnx"], r.get("litert")
            lt = f"{100 * li['accuracy']:.2f}% | {li['model_bytes']:,} | {li['latency_ms']['p50']:.3f}" if li else "- | - | -"
            out.append(f"| {r['variant']} | {100 * o['accuracy']:.2f}% | {o['model_bytes']:,} | {o['latency_ms']['p50']:.3f} | {lt} |")
        out += ["", f"Test split: unseen espeak-ng voices. Measured: {_machine(d)}.", ""]
    return out


def _long_wav_section() -> list[str]:
    """Memory on a long WAV."""
    out: list[str] = []
    lw = RESULTS / "long_wav_rss.json"
    if lw.is_file():
        d = _load(lw)
        rows = [("`edgekd run --wav` (blocks from disk)", d["streamed_from_disk"]), ("the same stream from the whole file in memory (before)",
                d["loaded_whole"])]
        rows += [(name, d[key]) for name, key in (("`edgekd bench --wav --repeats 1`", "bench_streamed"),
                                                   ("`edgekd eval-stream --negatives` (one positive)", "eval_stream_streamed")) if key in d]
        out += ["## A long WAV in constant memory (`make long-wav`)", "",
                f"{d['minutes']:.0f} minutes of 16 kHz audio ({d['wav_mb']} MB WAV) through `{Path(d['bundle']).name}`, each command in "
                f"its own process; peak RSS (goal < {d['goal_peak_rss_mb']} MB):", "", "| command | peak RSS MB | CPU s |", "|---|---|---|"]
        out += [f"| {name} | {r['peak_rss_mb']:.1f} | {r['cpu_s']:.1f} |" for name, r in rows]
        out += ["", f"Measured: {_machine(d)}.", ""]
    return out


def _fuzz_section() -> list[str]:
    """Input fuzzing."""
    out: list[str] = []
    fz = RESULTS / "fuzz.json"
    if fz.is_file():
        d = _load(fz)
        prov = d["provenance"]
        out += ["## Fuzzing the input boundary (`make fuzz`)", "",
                f"{d['examples_per_target']} mutated WAVs and {d['examples_per_target']} mutated bundles (Hypothesis, seed {d['seed']}) "
                "through `edgekd run` / `edgekd selftest` in one process: every case ended with exit 0, or exit 2 and one `error:` line, "
                "within the hang guard, and no bundle whose files differ from its listing passed `selftest`. Outcomes:", "",
                "| target | mutation -> exit codes | cases |", "|---|---|---|"]
        for target, counts in d["outcomes"].items():
            out += [f"| {target} | {k} | {v} |" for k, v in counts.items()]
        out += ["", f"Measured: {_machine(prov)}.", ""]
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "README.md", help="where the page goes (default: bench/README.md)")
    args = ap.parse_args(argv)
    out = ["# Benchmarks and studies", "",
           "Every number below is read from a JSON file in `bench/results/` by `python bench/summarize.py`; each file",
           "records the command, the machine, the library versions and the date. Rerun with `make bench` and",
           "`make kd-study`. These machines are shared and noisy: compare numbers measured side by side in one run.", ""]
    out += _realdev_sections() + _voices_section() + _kd_section() + _probe_sections()
    for mdir in sorted(p for p in RESULTS.iterdir() if p.is_dir()):
        out += _machine_section(mdir)
    for ww in sorted(RESULTS.glob("wakeword*.json")):
        out += _wakeword_section(ww)
    out += _sed_section() + _quantization_section() + _long_wav_section() + _fuzz_section()
    args.out.write_text("\n".join(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
