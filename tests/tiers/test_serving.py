"""What the sidecar serves: the plan from settings and the setup's decision, and the larger tier beside the
completion model (refactors, escalated completions, idle unload)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver.completion.pipeline import Completion, CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.models import default_model_path
from pyserver.server.settings import ServerSettings
from pyserver.server.tier_host import TierHost
from pyserver.tiers.plan import serving_plan
from tests.support.builders import random_model, write_gguf

CONFIG = {
    "model_paths": {"bitnet-b1.58-2b4t": "/m/2b4t.gguf", "falcon3-10b-instruct-1.58bit": "/m/f10b"},
    "decision": {"completion_model": "bitnet-b1.58-2b4t", "refactor_model": "falcon3-10b-instruct-1.58bit"},
}


def test_plan_from_settings_and_setup() -> None:
    assert serving_plan("/x/my.gguf", "auto", CONFIG).completion == Path("/x/my.gguf")  # the setting wins
    p = serving_plan("", "auto", CONFIG)
    assert (p.completion, p.large) == (Path("/m/2b4t.gguf"), Path("/m/f10b"))
    assert serving_plan("", "auto", None).completion == default_model_path()  # no setup yet
    p = serving_plan("", "13B", CONFIG)  # a tier chosen in the settings serves everything
    assert (p.completion, p.large) == (Path("/m/f10b"), None)
    p = serving_plan("", "7B", CONFIG)  # chosen but not here: the shipped model, and it says why
    assert p.completion == default_model_path() and "none of its models" in p.reasons[0]


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(5), "bitnet", "TQ2_0", n_layer=2)
    m.token_embd[-5:] = 0.0
    return write_gguf(m, tmp_path_factory.mktemp("big") / "big.gguf")


def test_refactors_and_escalation_use_the_larger_tier(larger: Path) -> None:
    host = TierHost()
    settings = ServerSettings(max_tokens=4)
    host.configure(larger, settings)
    unsure = Completion("x", 1.0, mean_entropy=9.0)
    sure = Completion("x", 1.0, mean_entropy=0.1)
    text = "def f(x):\n    return "
    assert host.escalate(unsure, "file:///a.py", text, len(text), lambda: False, settings) is None  # not loaded
    with host.refactor_session(settings) as session:  # loads it
        assert session is not None and Path(session.model.path) == larger
        assert host.escalate(unsure, "file:///a.py", text, len(text), lambda: False, settings) is None  # busy
    assert host.escalate(sure, "file:///a.py", text, len(text), lambda: False, settings) is None
    better = host.escalate(unsure, "file:///a.py", text, len(text), lambda: False, settings)
    # What the larger model answers on its own, through a pipeline of its own in this test.
    alone = ModelHost()
    alone.load(str(larger))
    want = CompletionPipeline(alone, settings.completion).complete("file:///a.py", text, len(text), lambda: False)
    assert better is not None and want is not None and better.text == want.text and host.escalations == 1
    off = ServerSettings(max_tokens=4, escalation=False)
    assert host.escalate(unsure, "file:///a.py", text, len(text), lambda: False, off) is None
    host.pool.idle_unload_s = -1.0  # everything counts as idle too long
    host.unload_idle()
    assert host.status()["loaded"] is False
    with host.refactor_session(settings) as session:  # and back on the next use
        assert session is not None and host.pool.loads == 2


def test_no_larger_tier_means_the_caller_falls_back(tmp_path: Path) -> None:
    host = TierHost()
    with host.refactor_session(ServerSettings()) as session:
        assert session is None
    host.configure(tmp_path / "missing.gguf", ServerSettings())
    with host.refactor_session(ServerSettings()) as session:  # cannot load: logged, fall back
        assert session is None


def test_the_completion_model_unloads_when_idle_and_not_in_use(larger: Path) -> None:
    host = ModelHost()
    host.load(str(larger))
    with host.completion_turn():
        assert not host.unload()  # in use: stays
    assert host.unload() and host.model is None and host.state == "idle"
    host.load(str(larger))  # what the server does on the next request
    assert host.ready


def test_refactors_on_the_larger_tier_draft_with_the_completion_model(
    larger: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    small = random_model(np.random.default_rng(6), "bitnet", "TQ2_0", n_layer=1)
    completion = ModelHost()
    completion.load(str(write_gguf(small, tmp_path_factory.mktemp("small") / "small.gguf")))
    host = TierHost()
    settings = ServerSettings()
    host.configure(larger, settings)
    with host.refactor_session(settings, drafter=completion) as session:
        assert session is not None and session.draft is not None and session.draft.model is completion.model
    other = random_model(np.random.default_rng(7), "bitnet", "TQ2_0", n_layer=1, vocab=300)
    completion.load(str(write_gguf(other, tmp_path_factory.mktemp("other") / "other.gguf")))
    with host.refactor_session(settings, drafter=completion) as session:  # another vocabulary: no drafting
        assert session is not None and session.draft is None
