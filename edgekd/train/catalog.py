"""What each architecture in the registry is (name, role, task, one-line summary), without torch.

The CLI reads it for ``--help`` and ``edgekd models``; ``edgekd.train.models`` joins each entry to its builder.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ArchInfo", "CATALOG", "arch_names"]


@dataclass(frozen=True)
class ArchInfo:
    name: str
    role: str  # "student" or "teacher"
    summary: str
    task: str = "kws"  # kws: one logit vector per window; sed: one per frame
    input: str = "logmel"  # the features it reads: log-mels (T, M), or the speech embedding's frames (9, 96)


CATALOG: dict[str, ArchInfo] = {
    a.name: a
    for a in (
        ArchInfo("dscnn", "student", "DS-CNN, width 64, 4 depthwise-separable blocks (~23k params)"),
        ArchInfo("dscnn-stream", "student", "DS-CNN, width 32, valid time kernels: also a streaming graph with state (~7.5k params)"),
        ArchInfo("dscnn-stream-64", "student", "dscnn-stream at width 64: also a streaming graph with state (~24k params)"),
        ArchInfo("dscnn-stream-128", "student", "dscnn-stream at width 128: also a streaming graph with state (~77k params)"),
        ArchInfo("bcresnet1", "student", "BC-ResNet-1 style, broadcasted residual blocks, width 1.25 (~11k params)"),
        ArchInfo("cnn-teacher", "teacher", "wide VGG-style CNN teacher (~0.6M params)"),
        ArchInfo("speech-embedding", "teacher", "MLP head on the frozen speech embedding (openWakeWord 0.4.0's backbone, 9 x 96 frames)",
                 input="speech-embedding"),
        ArchInfo("sed-crnn", "teacher", "SED teacher: CNN (frequency pooling) + bidirectional GRU, frame logits (~0.3M params)", "sed"),
        ArchInfo("sed-causal-cnn", "student", "SED student: causal depthwise-separable CNN, frame logits, streamable (~27k params)", "sed"),
    )
}


def arch_names(role: str, task: str = "kws") -> list[str]:
    """Names of the registry's architectures with this role for this task, in registry order."""
    return [a.name for a in CATALOG.values() if a.role == role and a.task == task]
