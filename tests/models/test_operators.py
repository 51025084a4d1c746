"""The operator allowlist of .pt2 graphs, checked against torch's own schemas: a torch upgrade
that changed what an allowed operator does would fail here instead of widening the audit."""

import math
import operator

import pytest
import torch

from models.checkpoints.operators import (
    DEVICE_TYPES,
    IN_PLACE,
    PURE,
    SHARES_AN_INPUT,
    STRING_MODES,
    SYMBOLIC,
    TRAINING_FLAGS,
    VIEWS,
)

REFUSED = {
    "aten.from_file.default": "reads and writes files",
    "aten._print.default": "prints to the child's stdout",
    "aten.set_.source_Storage": "swaps a tensor's storage",
    "aten.copy_.default": "writes into an argument",
    "aten.fill_.Scalar": "writes into an argument",
    "aten.resize_.default": "resizes an argument",
    "aten.empty.memory_format": "uninitialised memory",
    "aten.empty_strided.default": "uninitialised memory",
    "aten.einsum.default": "a free-form string",
    "aten._native_batch_norm_legit.default": "writes running statistics",
    "aten.atan2.out": "writes into out",
    "aten.split.Tensor": "results alias their input",
    "aten._assert_async.msg": "a free-form string",
}

REVIEWED_COMPOSITES = frozenset(
    f"aten.{name}"
    for name in """
    adaptive_avg_pool2d.default batch_norm.default conv1d.default conv2d.default conv3d.default
    conv_transpose2d.input group_norm.default layer_norm.default linear.default log_softmax.int
    matmul.default max_pool2d.default pad.default prelu.default relu6.default selu.default
    softmax.int square.default sym_numel.default sym_size.int sym_storage_offset.default
    sym_stride.int upsample_bilinear2d.vec upsample_nearest2d.vec var.dim
    """.split()
)
"""Composite operators of the allowlist whose result is always a new tensor (reviewed)."""


def _overload(name: str):
    namespace, op, overload = name.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), op), overload)


def _schema(name: str) -> torch.FunctionSchema:
    return _overload(name)._schema


def _written(schema) -> list[str]:
    return [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]


def _returned_alias_sets(schema) -> set[str]:
    sets: set[str] = set()
    for result in schema.returns:
        if result.alias_info is not None:
            sets |= set(result.alias_info.before_set)
    return sets


def _string_arguments(schema) -> list[str]:
    return [a.name for a in schema.arguments if str(a.type) in ("str", "Optional[str]")]


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_operators_write_nothing_and_alias_only_through_their_results(name):
    schema = _schema(name)
    assert not _written(schema), f"{name} writes to {_written(schema)}"
    declared = _returned_alias_sets(schema)
    for argument in schema.arguments:
        if argument.alias_info is not None:
            assert set(argument.alias_info.before_set) <= declared, (name, argument.name)
    assert (name in VIEWS) == bool(declared), f"{name}: VIEWS must list exactly the aliasing results"
    for argument in _string_arguments(schema):
        assert (name, argument) in STRING_MODES, f"{name} takes a free-form string {argument!r}"
    assert "Storage" not in str(schema)


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_in_place_operators_overwrite_only_self_and_return_it(name):
    schema = _schema(name)
    assert _written(schema) == ["self"] and schema.arguments[0].name == "self"
    assert _returned_alias_sets(schema) == set(schema.arguments[0].alias_info.before_set)
    others = [a.name for a in schema.arguments[1:] if a.alias_info is not None]
    assert not others and not _string_arguments(schema)
    assert name not in PURE


def test_string_modes_are_string_arguments_of_allowed_operators():
    for (name, argument), values in STRING_MODES.items():
        assert name in PURE and argument in _string_arguments(_schema(name))
        assert values and all(isinstance(value, str) for value in values)


def test_training_flags_are_boolean_arguments():
    for name, argument in TRAINING_FLAGS:
        assert name in PURE
        assert [str(a.type) for a in _schema(name).arguments if a.name == argument] == ["bool"]
    assert {"cpu", "cuda"} == DEVICE_TYPES


def test_file_storage_print_and_writing_operators_are_not_allowed():
    for name, why in REFUSED.items():
        assert _schema(name), "each refused example is a real operator"
        assert name not in PURE | IN_PLACE, why


def test_symbolic_helpers_are_arithmetic_functions():
    for name in SYMBOLIC:
        module, function = name.split(".")
        where = {"_operator": operator, "torch": torch, "math": math}[module]
        assert callable(getattr(where, function)), name


def test_composites_that_return_an_argument_are_known():
    """A composite operator may return an argument although its schema declares no alias; the
    audit must not count such a result as a fresh tensor. These do; every other composite of
    the allowlist was reviewed not to, and a torch that adds one fails here until reviewed."""
    x = torch.rand(2, 3)
    aten = torch.ops.aten
    for result in (
        aten.dropout.default(x, 0.5, False),
        aten.feature_dropout.default(x, 0.5, False),
        aten.alpha_dropout.default(x, 0.5, False),
        aten.type_as.default(x, x),
    ):
        assert result.data_ptr() == x.data_ptr()
    composites = {
        name
        for name in PURE - SHARES_AN_INPUT
        if torch._C._dispatch_has_kernel_for_dispatch_key(_overload(name).name(), "CompositeImplicitAutograd")
    }
    assert composites == REVIEWED_COMPOSITES
