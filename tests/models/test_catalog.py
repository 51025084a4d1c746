import subprocess
import sys

import pytest

from models.architectures.catalog import CATALOG, architecture_names, parse_triple
from models.architectures.registry import build_model, build_on_meta, build_surrogate


@pytest.mark.parametrize("name", architecture_names())
def test_declared_parameter_count_matches_the_built_network(name):
    model = build_on_meta(name)
    assert sum(p.numel() for p in model.parameters()) == CATALOG[name].parameters


@pytest.mark.parametrize("name", architecture_names())
def test_declared_flops_match_the_built_network(name):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build_on_meta(name).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32, device="meta"))
    assert counter.get_total_flops() == CATALOG[name].flops


def test_catalog_lists_every_entry_with_description_and_normalisation():
    assert architecture_names()[:2] == ["lenet", "resnet20"]
    for name, info in CATALOG.items():
        assert info.name == name and info.description and info.reference
        assert len(info.mean) == 3 and len(info.std) == 3 and min(info.std) > 0
        assert (info.surrogate is not None) == info.stochastic


def test_stochastic_entries_declare_a_surrogate_the_registry_builds():
    for name, info in CATALOG.items():
        surrogate = build_surrogate(name, build_on_meta(name))
        assert (surrogate is not None) == (info.surrogate is not None)


def test_catalog_and_inspection_import_without_torch():
    code = (
        "import sys, models.architectures.catalog, models.checkpoints.inspection, models.checkpoints.errors; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parse_triple_reads_three_numbers():
    assert parse_triple("0.485, 0.456,0.406") == (0.485, 0.456, 0.406)
    for bad in ("0.5,0.5", "a,b,c", "1,2,nan", ""):
        with pytest.raises(ValueError):
            parse_triple(bad)
    with pytest.raises(ValueError, match="above zero"):
        parse_triple("0.2,0,0.2", positive=True)


def test_unknown_architecture_is_a_value_error():
    with pytest.raises(ValueError, match="known: lenet"):
        build_model("resnet9000")
