"""Shared fixtures. Tests run at the smoke profile and never touch the user's cache."""

import pytest


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("NCTUTOR_PROFILE", "smoke")
    monkeypatch.setenv("NCTUTOR_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("NCTUTOR_MIRROR", raising=False)
    monkeypatch.delenv("NCTUTOR_OFFLINE", raising=False)
