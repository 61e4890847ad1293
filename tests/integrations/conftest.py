"""Each test starts with a fresh rate limit of the integrations' warnings, so that what one
test logged does not hold back another's messages."""
from __future__ import annotations

import pytest

from dlprov.integrations import common
from dlprov.integrations.throttle import Throttle


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> Throttle:
    fresh = Throttle(common.log)
    monkeypatch.setattr(common, "throttle", fresh)
    return fresh
