"""DistillationTask: the student's losses against ground truth and a frozen teacher.

FSF-LD feature sharing, as edgeld reads it (the paper's idea; the details are ours):
1. alignment: each student stage (strides 4, 8, 16, 32) passes through a 1x1 adapter to the
   teacher's channel count and is pulled toward the teacher's stage output (MSE in teacher-RMS
   units) - FitNets at every scale;
2. sharing: the adapted student stages run through the teacher's frozen decoder and head (the part
   the two networks now share); those heatmaps are trained toward the ground truth and toward the
   teacher's own heatmaps. Gradients flow through the frozen teacher into the adapters and the
   student, so the student learns features the teacher's decoder can read, not merely similar ones.
Adapters exist only during training; the shipped student is unchanged.

Baselines on the same student: output KD (to the teacher's heatmaps as in Fast Pose Distillation,
as KL between spatial-softmax maps rather than MSE: see losses.output_kd),
FitNets (one hint at stride 16), attention transfer (all four stages), channel-wise distillation
(decoder features through an adapter, tau 4).
"""
from __future__ import annotations

import torch
from torch import nn

from edgeld.distill.losses import attention_transfer, channel_wise, feature_mse, output_kd
from edgeld.models.landmarknet import LandmarkNet
from edgeld.torchside.losses import heatmap_loss

LOSS_WEIGHTS = {
    "output": {"heatmap": 1.0, "kd_output": 1.0},
    "fitnet": {"heatmap": 1.0, "kd_hint": 1.0},
    "at": {"heatmap": 1.0, "kd_attention": 1.0},
    "cwd": {"heatmap": 1.0, "kd_cwd": 1.0},
    "fsf": {"heatmap": 1.0, "fsf_align": 1.0, "fsf_shared_gt": 1.0, "fsf_shared_kd": 1.0},
    # FSF-LD's feature sharing plus the response term on the student's own head
    "fsf-out": {"heatmap": 1.0, "fsf_align": 1.0, "fsf_shared_gt": 1.0, "fsf_shared_kd": 1.0,
                "kd_output": 1.0},
}
FITNET_STAGE = 2  # stride 16: the classic "middle" hint layer


def _adapter(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


class DistillationTask(nn.Module):
    """Student + frozen teacher; forward returns named, unweighted losses (see LOSS_WEIGHTS)."""

    def __init__(self, student: LandmarkNet, teacher: LandmarkNet, method: str):
        super().__init__()
        if method not in LOSS_WEIGHTS:
            raise ValueError(f"unknown distillation method {method!r}")
        self.net, self.teacher, self.method = student, teacher.eval(), method
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.loss_weights = dict(LOSS_WEIGHTS[method])
        s_ch, t_ch = student.spec.widths[1:], teacher.spec.widths[1:]
        if method in ("fsf", "fsf-out"):
            self.adapters = nn.ModuleList(_adapter(s, t) for s, t in zip(s_ch, t_ch))
        elif method == "fitnet":
            self.adapters = nn.ModuleList([_adapter(s_ch[FITNET_STAGE], t_ch[FITNET_STAGE])])
        elif method == "cwd":
            self.adapters = nn.ModuleList([_adapter(student.spec.decoder_width,
                                                    teacher.spec.decoder_width)])
        else:
            self.adapters = nn.ModuleList()

    def train(self, mode: bool = True) -> "DistillationTask":
        super().train(mode)
        self.teacher.eval()  # frozen batch-norm statistics, always
        return self

    def forward(self, x, targets, cells) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            t_stages = self.teacher.forward_stages(x)
            t_decoded = self.teacher.forward_decoder(t_stages)
            t_logits = self.teacher.forward_head(t_decoded)
        s_stages = self.net.forward_stages(x)
        s_decoded = self.net.forward_decoder(s_stages)
        s_logits = self.net.forward_head(s_decoded)
        losses = {"heatmap": heatmap_loss(s_logits, targets)}
        if self.method == "output":
            losses["kd_output"] = output_kd(s_logits, t_logits)
        elif self.method == "fitnet":
            losses["kd_hint"] = feature_mse(self.adapters[0](s_stages[FITNET_STAGE]),
                                            t_stages[FITNET_STAGE])
        elif self.method == "at":
            losses["kd_attention"] = sum(attention_transfer(s, t) for s, t in zip(s_stages, t_stages))
        elif self.method == "cwd":
            losses["kd_cwd"] = channel_wise(self.adapters[0](s_decoded), t_decoded)
        if self.method in ("fsf", "fsf-out"):
            adapted = [a(s) for a, s in zip(self.adapters, s_stages)]
            losses["fsf_align"] = sum(feature_mse(a, t) for a, t in zip(adapted, t_stages)) / len(adapted)
            shared = self.teacher.forward_head(self.teacher.forward_decoder(adapted))
            losses["fsf_shared_gt"] = heatmap_loss(shared, targets)
            losses["fsf_shared_kd"] = output_kd(shared, t_logits)
        if self.method == "fsf-out":
            losses["kd_output"] = output_kd(s_logits, t_logits)
        return losses
