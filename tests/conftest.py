"""Fixtures shared by the tests of fix gnn/rollout, the bridge and the LAMMPS rollout."""

import pytest

from fixtures.make_models import make_models


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{name: path} of the analytic TorchScript models of tests/fixtures/make_models.py, written once."""
    return make_models(tmp_path_factory.mktemp("models"))
