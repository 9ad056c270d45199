"""A SCEP-ready CA per test, and its SCEP service on a real local listener."""

from __future__ import annotations

import pytest
from scep_support import scep_ca, serving

from tui_ca.server.scep.service import ScepService


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def served(ca):
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running
