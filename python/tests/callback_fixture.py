"""The callback module as the tests import it: a fixture shared by test_callback.py and test_ownership.py
(not a conftest.py: Tests/reference has the one conftest module of the run)."""
import importlib
import sys
import types

import pytest


@pytest.fixture
def callback_module(monkeypatch):
    """embedlapse.callback, imported fresh; on a stand-in TrainerCallback where transformers is not installed."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("transformers")
        stand_in.TrainerCallback = object
        monkeypatch.setitem(sys.modules, "transformers", stand_in)
    monkeypatch.delitem(sys.modules, "embedlapse.callback", raising=False)
    yield importlib.import_module("embedlapse.callback")
    sys.modules.pop("embedlapse.callback", None)  # no callback built on the stand-in outlives the test
