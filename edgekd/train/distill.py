"""Every distillation loss, pure functions: ``kd_loss`` (Hinton et al., 2015, one logit vector per window, softmax)
and ``sed_kd_loss`` (its frame-level, multi-label form with sigmoids, for sound events); ``label_log_prior``, the
shift of logit-adjusted training (Menon et al., 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["drop_keyword_mass", "kd_loss", "label_log_prior", "sed_kd_loss"]


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    alpha: float = 0.7,
    temperature: float = 3.0,
) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) * CE(y, z_s)``, batch mean.

    The teacher side is detached. Rows with ``targets < 0`` (unlabelled transfer audio) get only the
    KD term. ``teacher_logits=None`` or ``alpha=0`` is plain cross-entropy (the no-teacher baseline).
    """
    labelled = targets >= 0
    if labelled.any():
        ce = F.cross_entropy(student_logits[labelled], targets[labelled], reduction="sum") / student_logits.shape[0]
    else:
        ce = student_logits.sum() * 0.0
    if teacher_logits is None or alpha == 0.0:
        return ce
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    p_t = F.softmax(teacher_logits.detach() / t, dim=-1)
    kl = F.kl_div(log_p_s, p_t, reduction="batchmean")
    return alpha * t * t * kl + (1.0 - alpha) * ce


def label_log_prior(targets: torch.Tensor, n_labels: int) -> torch.Tensor:
    """``log`` of each label's share of the labelled rows (``targets >= 0``; a label without rows counts as one row).

    Logit-adjusted training adds this vector to the student's logits inside the loss (cross-entropy and KD alike):
    the loss then fits ``logits + log prior`` to the training labels, so the logits themselves score the labels as if
    they were equally frequent. A set with three times as many ``_unknown_`` clips as clips of each keyword otherwise
    teaches the model to answer ``_unknown_`` three times as readily when in doubt."""
    counts = torch.bincount(targets[targets >= 0].long(), minlength=n_labels)[:n_labels].double().clamp(min=1.0)
    return (counts / counts.sum()).log().float()


def drop_keyword_mass(teacher_logits: torch.Tensor, targets: torch.Tensor, negative_ids: torch.Tensor, margin: float = 30.0) -> torch.Tensor:
    """``teacher_logits`` with every keyword class set ``margin`` below the row's best non-keyword logit on the rows
    whose label is a non-keyword (``negative_ids``: _unknown_, _silence_): a clip known to hold no keyword keeps the
    teacher's split between the non-keyword classes and none of its keyword mass (at temperature 3, e^-10 of it).
    Keyword rows and unlabelled rows (``targets < 0``) are unchanged."""
    negative = torch.isin(targets, negative_ids)
    keyword = torch.ones(teacher_logits.shape[1], dtype=torch.bool, device=teacher_logits.device)
    keyword[negative_ids] = False
    if not negative.any() or not keyword.any():
        return teacher_logits
    low = teacher_logits[:, ~keyword].max(dim=1, keepdim=True).values - margin
    return torch.where(negative.unsqueeze(1) & keyword.unsqueeze(0), low, teacher_logits)


def sed_kd_loss(student: torch.Tensor, teacher: torch.Tensor | None, target: torch.Tensor, alpha: float, temperature: float,
                labelled: torch.Tensor | None = None) -> torch.Tensor:
    """Batch mean of the frame-level KD loss. ``labelled`` (B,) bool: samples without labels (a transfer set) take
    the soft term alone."""
    if teacher is None or alpha == 0.0:
        return F.binary_cross_entropy_with_logits(student, target)
    t = float(temperature)
    hard = F.binary_cross_entropy_with_logits(student, target, reduction="none").mean(dim=(1, 2))
    soft = F.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher.detach() / t), reduction="none").mean(dim=(1, 2)) * t * t
    per = alpha * soft + (1.0 - alpha) * hard
    if labelled is not None:
        per = torch.where(labelled, per, soft)
    return per.mean()
