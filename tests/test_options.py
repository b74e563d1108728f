"""Options are defined once (edgeld.options); the CLI's choices and the heavy modules use them."""
import click
import pytest

from edgeld import options
from edgeld.cli import cli

# (command, option) -> the options constant its click.Choice must list, in order
CHOICES = {
    ("train", "role"): options.ROLES,
    ("train", "kd"): options.KD_METHODS,
    ("train", "device"): options.TRAIN_DEVICES,
    ("evaluate", "reference"): options.REFERENCES,
    ("evaluate", "decode"): options.DECODE_MODES,
    ("predict", "decode"): options.DECODE_MODES,
    ("export", "target_format"): options.EXPORT_FORMATS,
    ("export", "target"): options.INT8_TARGETS,
    ("export", "method"): options.CALIBRATION_METHODS,
    ("export", "precision"): options.PRECISIONS,
    ("calibrate", "method"): options.SELECTION_METHODS,
    ("benchmark", "backends"): options.BACKENDS,
    ("benchmark", "power"): options.POWER_MODES,
}


@pytest.mark.parametrize("command, option", list(CHOICES))
def test_cli_choices_come_from_options(command, option):
    param = next(p for p in cli.commands[command].params if p.name == option)
    assert isinstance(param.type, click.Choice)
    assert tuple(param.type.choices) == tuple(CHOICES[command, option])


def test_every_choice_in_the_cli_is_covered():
    found = {(name, p.name) for name, cmd in cli.commands.items() for p in cmd.params
             if isinstance(p.type, click.Choice)}
    assert found == set(CHOICES)


def test_heavy_modules_use_the_same_constants():
    from edgeld.distill import task
    from edgeld.distill.task import LOSS_WEIGHTS
    from edgeld.export import calibration, precision
    from edgeld.models import runner

    assert runner.TORCH_BACKENDS is options.TORCH_BACKENDS
    assert precision.INT8_TARGETS is options.INT8_TARGETS
    assert precision.CALIBRATION_METHODS is options.CALIBRATION_METHODS
    assert calibration.SELECTION_METHODS is options.SELECTION_METHODS
    assert set(LOSS_WEIGHTS) | {"none"} == set(options.KD_METHODS)  # every --kd has its losses
    assert not hasattr(task, "KD_METHODS")  # the unused duplicate is gone
    assert set(options.BACKENDS) == set(options.TORCH_BACKENDS) | set(options.ORT_BACKENDS)
