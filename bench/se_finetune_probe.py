"""Does fine-tuning the speech embedding's last layer help the teacher? Frozen backbone vs last convolution trained.

    python bench/se_finetune_probe.py --data runs/vb/data --seeds 0 1 2

The speech-embedding teacher runs the backbone (openwakeword 0.4.0's two ONNX files) frozen through onnxruntime and
trains a head on its 9 x 96 frames. Here the backbone's last layer (a 96 -> 96 convolution, kernel 3 x 1, no bias,
27,648 weights, behind the last max-pool) is ported to torch with the ONNX weights: the graph's max-pool output is
added as an output of a copy of ``embedding_model.onnx`` (checked: the torch convolution of it equals the ONNX
embedding), and the same head is trained twice on the same clips and seeds, once with that convolution frozen
(the teacher as shipped) and once trained with the head (learning rate ``--conv-lr``). Clips: the training split of
``--data`` without augmentation (one clean view; the shipped teacher trains on 3 augmented views, so both arms here
are below it); scored on the synthesized validation split and, when present, on real speech (dev speakers of
../shared/realdev, measurement only). Writes bench/results/kd_se_finetune_probe.json (``--json``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
POOL_OUT = "model/max_pooling2d_4/MaxPool:0"
CONV_W = "model/conv2d_19/Conv2D/ReadVariableOp:0"


class PooledBackbone:
    """The backbone up to its last max-pool: ``(N, S)`` clips -> ``(N, 9, 96, 3)`` plus the ONNX embedding ``(N, 9, 96)``."""

    def __init__(self, threads: int = 1) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        from edgekd.runtime.embedding_backbone import BACKBONE_FILES, EmbeddingBackbone
        from edgekd.train.teachers.oww import oww_models_dir

        folder = oww_models_dir()
        self.base = EmbeddingBackbone(folder, threads=threads)
        m = onnx.load(str(folder / BACKBONE_FILES[1]))
        self.conv_w = next(numpy_helper.to_array(i) for i in m.graph.initializer if i.name == CONV_W).copy()  # (96, 96, 3, 1)
        m.graph.output.append(onnx.helper.make_tensor_value_info(POOL_OUT, onnx.TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.outs = [m.graph.output[0].name, POOL_OUT]

    def __call__(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from edgekd.runtime.embedding_backbone import FRAMES

        emb, pooled = self.sess.run(self.outs, {self.sess.get_inputs()[0].name: self.base.mel_windows(audio)})
        n = audio.shape[0]
        return pooled.reshape(n, FRAMES, 96, 3).astype(np.float32), emb.reshape(n, FRAMES, 96).astype(np.float32)


def features(backbone: PooledBackbone, clips: list, labels: list[str], batch: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Pooled features, ONNX embeddings and label indices (into ``labels``) of ``clips`` (each fit to one second)."""
    from edgekd.core.progress import Progress
    from edgekd.data.augment import fit_to_length

    pooled, emb = [], []
    with Progress("backbone", total=len(clips), unit="clip") as bar:
        for i in range(0, len(clips), batch):
            part = clips[i : i + batch]
            p, e = backbone(np.stack([fit_to_length(c.load(16000), 16000) for c in part]))
            pooled.append(p)
            emb.append(e)
            bar.update(len(part))
    return np.concatenate(pooled), np.concatenate(emb), np.asarray([labels.index(c.label) for c in clips])


def train_arm(pooled: np.ndarray, y: np.ndarray, conv_w: np.ndarray, labels: int, *, finetune: bool, seed: int, epochs: int,
              conv_lr: float) -> object:
    """The head (edgekd's EmbeddingHead) on the ported last convolution, that convolution trained or not."""
    import torch
    from torch import nn

    from edgekd.train.models.teachers.embedding_head import EmbeddingHead

    torch.manual_seed(seed)
    conv = nn.Conv1d(96, 96, 3, bias=False)
    conv.weight.data.copy_(torch.from_numpy(conv_w[..., 0]))
    conv.weight.requires_grad_(finetune)
    head = EmbeddingHead(labels)
    x = torch.from_numpy(pooled)

    def embed(p: torch.Tensor) -> torch.Tensor:  # (B, 9, 96, 3) -> (B, 9, 96)
        b, f = p.shape[:2]
        return conv(p.reshape(b * f, 96, 3)).reshape(b, f, 96)

    with torch.no_grad():
        e = embed(x)
        head.norm.set_stats(e.mean(dim=(0, 1)), e.std(dim=(0, 1)))
    groups = [{"params": head.parameters(), "lr": 1e-3}] + ([{"params": conv.parameters(), "lr": conv_lr}] if finetune else [])
    opt = torch.optim.AdamW(groups, weight_decay=1e-2)
    yt = torch.from_numpy(y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        head.train()
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = nn.functional.cross_entropy(head(embed(x[idx])), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()

    def predict(p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return head(embed(torch.from_numpy(p))).argmax(-1).numpy()

    return predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "runs/vb/data")
    ap.add_argument("--realdev", type=Path, default=REPO.parent / "shared" / "realdev" / "gsc_v2_test_dev")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--conv-lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=REPO / "bench/results/kd_se_finetune_probe.json")
    args = ap.parse_args()
    if args.epochs < 1 or not args.seeds:
        raise SystemExit("--epochs: at least 1; --seeds: at least one")

    import torch

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.data import KWS12_LABELS
    from edgekd.data.speech_commands import SpeechCommands

    if not (args.data / "synth_meta.json").is_file():
        raise SystemExit(f"{args.data}: not a synthesized KWS set (edgekd data synth-kws)")
    torch.set_num_threads(args.threads)
    sc = SpeechCommands(args.data)
    labels = list(KWS12_LABELS)  # the 12-label task of the shipped KWS bundles
    bb = PooledBackbone(threads=args.threads)
    t0 = time.time()
    sets = {"train": features(bb, sc.clips(labels, "train"), labels), "validation": features(bb, sc.clips(labels, "validation"), labels)}
    if args.realdev.is_dir():
        sets["realdev"] = features(bb, SpeechCommands(args.realdev).clips(labels, "all"), labels)
    ported = np.einsum("nfcw,ocw->nfo", sets["validation"][0][:64], bb.conv_w[..., 0])
    parity = float(np.abs(ported - sets["validation"][1][:64]).max())
    if parity > 1e-3:
        raise SystemExit(f"the ported last convolution differs from the ONNX embedding by {parity:.2e}: the port is wrong")
    print(f"features in {time.time() - t0:.0f} s; ported convolution vs ONNX: max |diff| {parity:.1e}", flush=True)
    runs = []
    for seed in args.seeds:
        for finetune in (False, True):
            t = time.time()
            predict = train_arm(sets["train"][0], sets["train"][2], bb.conv_w, len(labels), finetune=finetune, seed=seed,
                                epochs=args.epochs, conv_lr=args.conv_lr)
            row = {"arm": "last conv trained" if finetune else "frozen", "seed": seed, "seconds": round(time.time() - t, 1)}
            for name in sets.keys() - {"train"}:
                p, _, y = sets[name]
                row[f"{name}_accuracy"] = float(np.mean(predict(p) == y))
            runs.append(row)
            print(row, flush=True)
    table = ["| arm | n | synthesized validation % | real speech (dev speakers) % |", "|---|---|---|---|"]
    for arm in ("frozen", "last conv trained"):
        rs = [r for r in runs if r["arm"] == arm]

        def ms(k: str, rs: list = rs) -> str:  # type: ignore[type-arg]
            v = [100 * r[k] for r in rs if k in r]
            return f"{statistics.mean(v):.2f} +- {statistics.stdev(v) if len(v) > 1 else 0.0:.2f}" if v else "-"

        table.append(f"| {arm} | {len(rs)} | {ms('validation_accuracy')} | {ms('realdev_accuracy')} |")
    md = "\n".join(table)
    print(md)
    write_json(args.json, {
        "what": ("the speech-embedding teacher's head on the frozen backbone vs with the backbone's last convolution "
                 f"(27,648 weights) trained too (lr {args.conv_lr:g}), {args.epochs} epochs on one clean view of the training "
                 "clips, same seeds; synthesized validation and real speech (dev speakers)"),
        "command": "python bench/se_finetune_probe.py --data " + str(args.data) + " --seeds " + " ".join(map(str, args.seeds))
                   + f" --epochs {args.epochs} --conv-lr {args.conv_lr:g}",
        "ported_conv_max_abs_diff": parity, "runs": runs, "table_md": md, "machine": machine_facts()})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
