"""Distillation losses between a student and a frozen teacher. Each is scale-free enough that a
weight of 1 is a sensible start (features are compared after normalization by the teacher's RMS)."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def output_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Output KD on heatmaps: KL(teacher || student) between spatial-softmax maps, mean over maps.

    Fast Pose Distillation uses MSE to the teacher's heatmaps; ours are probability maps trained
    with KL to Gaussian targets, so KL to the teacher's maps is the same idea on the same scale as
    the ground-truth loss. (MSE on maps scaled by the number of cells was tried first: a teacher's
    sharp peaks made it ~100x the other losses and it swamped training.)"""
    log_s = F.log_softmax(student_logits.flatten(2), dim=2)
    log_t = F.log_softmax(teacher_logits.detach().flatten(2), dim=2)
    return (log_t.exp() * (log_t - log_s)).sum(dim=2).mean()


def _rms(t: torch.Tensor) -> torch.Tensor:
    return t.detach().pow(2).mean().sqrt().clamp_min(1e-6)


def feature_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """FitNets hint loss: MSE between (adapted) student and teacher features, in teacher-RMS units."""
    scale = _rms(teacher)
    return F.mse_loss(student / scale, teacher.detach() / scale)


def attention_map(feat: torch.Tensor) -> torch.Tensor:
    """Attention transfer's spatial map: channel mean of squared activations, L2-normalized."""
    return F.normalize(feat.pow(2).mean(dim=1).flatten(1), dim=1)


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis: distance between normalized attention maps (no adapter needed)."""
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
    return (attention_map(student) - attention_map(teacher.detach())).pow(2).sum(dim=1).mean()


def channel_wise(student: torch.Tensor, teacher: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """CWD (Shu et al. 2021): per channel, KL between spatial softmax distributions at temperature
    tau, times tau^2; student channels must already match the teacher's (adapter)."""
    n, c = teacher.shape[:2]
    log_s = F.log_softmax(student.flatten(2) / tau, dim=2)
    p_t = F.softmax(teacher.detach().flatten(2) / tau, dim=2)
    return (tau ** 2) * (p_t * (torch.log(p_t.clamp_min(1e-12)) - log_s)).sum(dim=2).mean()
