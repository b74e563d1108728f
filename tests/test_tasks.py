import torch

from edgeld.config import ModelSpec
from edgeld.models.landmarknet import LandmarkNet
from edgeld.torchside.losses import heatmap_loss, offset_loss
from edgeld.train.tasks import MultiTaskTask, random_block_mask


def test_heatmap_loss_is_zero_at_the_target_and_positive_elsewhere():
    target = torch.softmax(torch.randn(2, 3, 8 * 8), -1).view(2, 3, 8, 8)
    assert heatmap_loss(torch.log(target), target).abs() < 1e-5
    assert heatmap_loss(torch.zeros(2, 3, 8, 8), target) > 0.01


def test_offset_loss_zero_for_exact_vectors_only():
    h, w = 6, 7
    cells = torch.tensor([[[2.3, 3.6]]])
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    exact = torch.stack([2.3 - xs, 3.6 - ys])[None, None]
    assert offset_loss(exact, cells) < 1e-6
    assert offset_loss(exact + 0.5, cells) > 0.4


def test_block_mask_ratio_and_probability():
    x = torch.zeros(200, 1, 64, 64)
    gen = torch.Generator().manual_seed(0)
    mask = random_block_mask(x, 16, 0.3, 0.5, gen)
    assert mask.shape == x.shape and set(mask.unique().tolist()) <= {0.0, 1.0}
    per_image = mask.mean(dim=(1, 2, 3))
    assert 0.35 < (per_image > 0).float().mean() < 0.65
    assert 0.2 < per_image[per_image > 0].mean() < 0.4


def test_multitask_returns_named_losses_and_keeps_plain_forward():
    net = LandmarkNet(ModelSpec(widths=(4, 8, 8, 8, 8), depths=(1, 1, 1, 1), decoder_width=8,
                                num_landmarks=2))
    task = MultiTaskTask(net, offset_weight=1.0, reconstruction_weight=0.5, mask_prob=1.0)
    x = torch.randn(2, 1, 64, 64)
    targets = torch.softmax(torch.randn(2, 2, 256), -1).view(2, 2, 16, 16)
    losses = task(x, targets, torch.rand(2, 2, 2) * 15)
    assert set(losses) == {"heatmap", "offset", "reconstruction"}
    assert all(torch.isfinite(v) and v >= 0 for v in losses.values())
    sum(losses.values()).backward()
    assert task.heads.offset.weight.grad is not None
    assert net(x).shape == (2, 2, 16, 16)  # deployment forward is unchanged


def test_multitask_heatmap_loss_sees_the_clean_input():
    """Masking feeds reconstruction only: the heatmap loss equals plain training's on the same
    input, so an aux-vs-no-aux comparison measures the extra tasks, not input corruption."""
    from edgeld.train.tasks import HeatmapTask

    torch.manual_seed(0)
    net = LandmarkNet(ModelSpec(widths=(4, 8, 8, 8, 8), depths=(1, 1, 1, 1), decoder_width=8,
                                num_landmarks=2)).eval()
    x = torch.randn(2, 1, 64, 64)
    targets = torch.softmax(torch.randn(2, 2, 256), -1).view(2, 2, 16, 16)
    masked_task = MultiTaskTask(net, offset_weight=1.0, reconstruction_weight=0.5, mask_prob=1.0)
    losses = masked_task(x, targets, torch.rand(2, 2, 2) * 15)
    assert torch.allclose(losses["heatmap"], HeatmapTask(net)(x, targets, None)["heatmap"])
