"""Shared inputs for the data tests: the committed fixtures and a small synthetic catalog."""
from __future__ import annotations

import os

import pytest

from recr1.data.synthetic import generate_catalog

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
C4_FIXTURE = os.path.join(REPO, "data", "fixtures", "amazon_c4")
ESCI_FIXTURE = os.path.join(REPO, "data", "fixtures", "esci")


@pytest.fixture(scope="session")
def c4_fixture_dir() -> str:
    """The committed Amazon-C4-format fixture (200 items, 50 requests)."""
    return C4_FIXTURE


@pytest.fixture(scope="session")
def esci_fixture_dir() -> str:
    """The committed ESCI-format fixture (200 US products, 40 queries)."""
    return ESCI_FIXTURE


@pytest.fixture(scope="session")
def synthetic_raw_dir(tmp_path_factory) -> str:
    """A small synthetic catalog: 2,000 items and 400 requests, seed 3."""
    out = str(tmp_path_factory.mktemp("synthetic_raw"))
    generate_catalog(out, n_items=2000, n_requests=400, seed=3)
    return out


AMAZON_REVIEW_FIXTURE = os.path.join(REPO, "data", "fixtures", "amazon_review")


@pytest.fixture(scope="session")
def amazon_review_fixture_dir() -> str:
    """The committed Amazon-Reviews-2023-format fixture (40 synthetic users, 4 bad review rows at the end)."""
    return AMAZON_REVIEW_FIXTURE
