"""A checkpoint uploaded without mean/std gets the accuracy of its own forward pass.

LeNets trained here in seconds on a learnable synthetic task, once on [0, 1] pixels, once with
CIFAR-10 statistics and once with (0.5, 0.5, 0.5) — the zoo's default for ``lenet`` — go
through the real platform. The first two need the platform to find their normalisation; a
wrong declaration stops before any attack, uncharged, and ``as-declared`` insists on it.
"""

from pathlib import Path

import httpx
import pytest
import torch
from markupsafe import escape

from tests.processes import Platform
from tests.synthetic import CIFAR10, HALF, NONE, accuracy, save_task, train_lenet
from worker.data import load_eval_set

pytestmark = pytest.mark.slow

TIE_MARGIN = 0.05  # the rule's: a candidate must be 5 points better to replace another
EVAL_IMAGES = 512  # K is the whole set: fewer than the suite's 1024
SMOKE_IMAGES = 64  # what the smoke suite attacks and reports as natural accuracy
TRAINED = {"none": NONE, "cifar10": CIFAR10, "half": HALF}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    folder = tmp_path_factory.mktemp("nets")
    found = {}
    for name, normalisation in TRAINED.items():
        net = train_lenet(normalisation)
        torch.save(net.state_dict(), folder / f"{name}.pth")
        found[name] = (folder / f"{name}.pth", net)
    return found


@pytest.fixture
def task_env(arena_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    eval_set = save_task(tmp_path / "task.npz", EVAL_IMAGES, seed=7)
    return {**arena_env, "ARENA_EVAL_SET": str(eval_set)}


def own_accuracy(net, env: dict[str, str], normalisation, n: int | None = None) -> float:
    """The network's own forward pass on the images the worker reads."""
    images, labels = load_eval_set(Path(env["ARENA_EVAL_SET"]), n)
    return accuracy(net, images, labels, normalisation)


def test_each_network_uploaded_without_mean_std_scores_its_own_forward_pass(task_env, tmp_path, checkpoints):
    platform = Platform(task_env, tmp_path)
    try:
        submitted = {}
        for name, (path, _) in checkpoints.items():
            token = platform.create_team(f"Team {name}")
            response = platform.submit(token, path, arch="auto")
            assert response.status_code == 202, response.text
            submitted[name] = (response.json()["id"], token)
        for name, (submission_id, token) in submitted.items():
            body = platform.wait_for(submission_id, token)
            assert body["status"] == "finished", (body, platform.logs_text())
            net, trained = checkpoints[name][1], TRAINED[name]
            record = body["results"]["normalisation"]
            chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
            own = own_accuracy(net, task_env, trained)
            print(
                f"{name}: own {own:.3f}, platform {chosen['accuracy']:.3f} with "
                f"{record['chosen']}; candidates "
                + ", ".join(
                    f"{c['name']} {c['accuracy'] or 0:.3f} on {c['measured']}" for c in record["candidates"]
                )
            )
            assert record["n"] == EVAL_IMAGES and record["mode"] == "auto"
            assert abs(chosen["accuracy"] - own) <= TIE_MARGIN
            natural = body["results"]["natural"]
            assert natural["n"] == SMOKE_IMAGES
            assert abs(natural["accuracy"] - own_accuracy(net, task_env, trained, SMOKE_IMAGES)) <= TIE_MARGIN
            default = next(c for c in record["candidates"] if c["name"] == "default")
            switched = name != "half"  # lenet's default is (0.5, 0.5, 0.5)
            assert body["normalisation_inferred"] is switched
            assert record["inferred"] is switched and record["in_force"] == "default"
            assert (chosen["accuracy"] - default["accuracy"] >= TIE_MARGIN) is switched
            codes = [flag["code"] for flag in body["results"]["flags"]]
            assert ("normalisation_inferred" in codes) is switched
            if switched:
                assert chosen["p_value"] < 0.001
            page = httpx.get(f"{platform.url}/submissions/{submission_id}").text
            assert 'id="normalisation-table"' in page and str(escape(record["summary"])) in page
    finally:
        platform.stop()


def test_a_wrong_declaration_stops_uncharged_and_as_declared_insists(task_env, tmp_path, checkpoints):
    path, net = checkpoints["none"]
    mean, std = (",".join(map(str, values)) for values in CIFAR10)
    platform = Platform(task_env, tmp_path)
    try:
        token = platform.create_team("Team Declared")
        response = platform.submit(token, path, arch="lenet", mean=mean, std=std)
        assert response.status_code == 202, response.text
        body = platform.wait_for(response.json()["id"], token)
        assert body["status"] == "failed", (body, platform.logs_text())
        declared = own_accuracy(net, task_env, CIFAR10)
        right = own_accuracy(net, task_env, NONE)
        error = body["error"]
        print(error)
        assert f"gives {100 * declared:.1f}% natural accuracy" in error
        assert f"no normalisation (mean 0, 0, 0, std 1, 1, 1) gives {100 * right:.1f}%" in error
        assert "mean=0,0,0 and std=1,1,1" in error and "normalisation=as-declared" in error
        assert body["results"] is None
        quota = httpx.get(
            f"{platform.url}/api/teams/me/quota", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert quota["used_today"] == 0, quota

        response = platform.submit(token, path, arch="lenet", mean=mean, std=std, normalisation="as-declared")
        assert response.status_code == 202, response.text
        assert response.json()["normalisation"] == "as-declared"
        body = platform.wait_for(response.json()["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
        record = body["results"]["normalisation"]
        assert record["verdict"] == "insisted" and record["chosen"] == "cifar10"
        assert body["normalisation_inferred"] is False
        insisted = next(c for c in record["candidates"] if c["name"] == "cifar10")
        assert abs(insisted["accuracy"] - declared) <= 0.005
        assert (
            abs(body["results"]["natural"]["accuracy"] - own_accuracy(net, task_env, CIFAR10, SMOKE_IMAGES))
            <= TIE_MARGIN
        )
    finally:
        platform.stop()
