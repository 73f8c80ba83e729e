"""Hyperparameter defaults have one value each: the blocks' fields, the model constructors
that build the blocks, the pipeline's config (read from the constructors' signatures), and
every default quoted in the constructors' docstrings and the README agree."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from moseq.blocks import ARDynamics
from moseq.models import arhmm, arhmm_blocks, keypoint_slds, slds
from moseq.pipeline import Config, ModelConfig

README = Path(__file__).resolve().parents[1] / "README.md"

# A constructor's deliberate departure from a block's field default: keypoint-MoSeq's jitter
# of the Kalman sampler (the SLDS keeps the block's 0).
MODEL_SPECIFIC = {("keypoint_slds", "KalmanLatents", "jitter"): 1e-3}
# The pipeline's own [model] keys: the kappa of each stage of its fit.
PIPELINE_ONLY = ("kappa_ar", "kappa_full")

MODELS = {
    "arhmm": lambda: arhmm(2),
    "arhmm(transitions='sticky_dir')": lambda: arhmm(2, transitions="sticky_dir"),
    "slds": lambda: slds(np.ones((4, 3))),
    "keypoint_slds": lambda: keypoint_slds((0,), (1,)),
}


def keyword_defaults(*functions) -> dict:
    return {name: parameter.default for function in functions
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


CONSTRUCTOR_DEFAULTS = keyword_defaults(arhmm_blocks, keypoint_slds)


def same(value, default) -> bool:
    if value is None or default is None:
        return value is default
    return bool(np.array_equal(np.asarray(value), np.asarray(default)))


@pytest.mark.parametrize("name", MODELS)
def test_constructors_leave_block_fields_at_their_defaults(name):
    model = MODELS[name]()
    checked = 0
    for block in model.blocks:
        for field in dataclasses.fields(block):
            if field.default is dataclasses.MISSING:
                continue
            key = (name, type(block).__name__, field.name)
            expected = MODEL_SPECIFIC.get(key, field.default)
            assert same(getattr(block, field.name), expected), (
                f"{name}() builds {key[1]}.{field.name} = {getattr(block, field.name)!r}, but "
                f"the field's default is {field.default!r}: make them agree (or list a "
                "deliberate difference in MODEL_SPECIFIC).")
            checked += 1
    assert checked


def test_arhmm_blocks_and_the_ar_block_agree():
    create = keyword_defaults(ARDynamics.create)
    for name in ("nlags", "S_0_scale", "K_0_scale"):
        assert CONSTRUCTOR_DEFAULTS[name] == create[name], name


def test_the_config_defaults_are_the_constructors():
    fields = {field.name: field.default for field in dataclasses.fields(ModelConfig)}
    for name, default in fields.items():
        if name in PIPELINE_ONLY:
            continue
        assert name in CONSTRUCTOR_DEFAULTS, f"model.{name} is no keyword of keypoint_slds"
        assert default == CONSTRUCTOR_DEFAULTS[name], name
    config = Config.from_dict({"data": {"paths": ["x"], "anterior": "a", "posterior": "b"}})
    kwargs = config.model_kwargs()
    assert set(kwargs) <= set(CONSTRUCTOR_DEFAULTS)
    assert kwargs["kappa"] == config.model.kappa_full


def quoted_defaults(text: str) -> list[tuple[str, str]]:
    """Every `name value` in `text` whose name is a constructor keyword."""
    names = "|".join(sorted(CONSTRUCTOR_DEFAULTS, key=len, reverse=True))
    return re.findall(rf"\b({names}) (-?\d[\d.]*(?:e-?\d+)?)\b", text)


def test_quoted_defaults_match_the_signatures():
    sentence = re.search(r"Defaults are keypoint-MoSeq's \((.*?)\); all are keywords",
                         README.read_text(), re.DOTALL)
    assert sentence, "README's defaults sentence moved; update this test"
    quoted = quoted_defaults(sentence.group(1))
    assert len(quoted) == len(sentence.group(1).split(",")), "every entry is `name value`"
    for function in (arhmm, arhmm_blocks, slds, keypoint_slds):
        quoted += quoted_defaults(function.__doc__)
    for name, value in quoted:
        assert float(value) == CONSTRUCTOR_DEFAULTS[name], (name, value)
