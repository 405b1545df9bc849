"""Weights are read safely and fitted onto architectures exactly, or refused with the reason."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from zoo.errors import LoadError
from zoo.statedict import fit_state_dict, read_state_dict


def net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


class Payload:
    def __reduce__(self):
        return (print, ("this would run at load time",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"weight": Payload()}, f)
    with pytest.raises(LoadError, match="refused to load .*evil.pth.*arbitrary code") as caught:
        read_state_dict(path, model="evil")
    message = str(caught.value)
    assert "(Unsupported " in message  # what the unpickler stopped at
    assert "weights_only" not in message and "likely succeed" not in message  # not torch's advice to run it


def test_a_broken_file_outside_the_cache_is_not_pulled_again(tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(LoadError) as caught:
        read_state_dict(path, model="mine")
    assert "zoo pull --force" not in str(caught.value) and "not zoo's copy" in str(caught.value)


def test_safetensors_and_wrapped_checkpoints(tmp_path):
    from safetensors.torch import save_file

    state = net().state_dict()
    save_file(state, str(tmp_path / "w.safetensors"))
    assert read_state_dict(tmp_path / "w.safetensors", model="m").keys() == state.keys()
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pth")
    assert read_state_dict(tmp_path / "ckpt.pth", model="m").keys() == state.keys()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(LoadError, match="junk.pth"):
        read_state_dict(tmp_path / "junk.pth", model="m")


def test_rename_rules_map_foreign_keys():
    target = net().state_dict()
    foreign = {f"backbone._layer{k}": v.clone() for k, v in target.items()}
    fitted = fit_state_dict(foreign, target, model="m", rename=[[r"^backbone\._layer", ""]])
    assert list(fitted) == list(target)


def test_positional_remap_checks_every_shape():
    target = net().state_dict()
    foreign = {f"other_{i}": v.clone() for i, v in enumerate(target.values())}
    fitted = fit_state_dict(foreign, target, model="m", positional=True)
    assert all(torch.equal(fitted[k], v) for k, v in zip(target, foreign.values()))
    foreign["other_0"] = torch.zeros(5, 3, 3, 3)
    with pytest.raises(LoadError, match=r"wrong shape.*other_0 \(5, 3, 3, 3\) -> 0.weight \(4, 3, 3, 3\)"):
        fit_state_dict(foreign, target, model="m", positional=True)
    with pytest.raises(LoadError, match="the file has 1, the architecture"):
        fit_state_dict({"a": torch.zeros(1)}, target, model="m", positional=True)


def test_mismatched_keys_say_what_to_do():
    target = net().state_dict()
    foreign = {f"x.{k}": v for k, v in target.items()}
    with pytest.raises(LoadError, match="missing.*unexpected.*rename.*positional"):
        fit_state_dict(foreign, target, model="m")
