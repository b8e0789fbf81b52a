"""Every build on the Spark standalone cluster that `make cluster-up` starts (a master and two
workers of one core each, on 127.0.0.1): the same results export as the oracle's, byte for
byte, when the executors are other processes than the driver."""

import os
import subprocess

import pytest

from experiments.reference.oracle import run_oracle
from shared.catalogue import QUERY_NAMES
from shared.export import export_path
from tests.live import LAB

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
MASTER = os.environ.get("LAB_TEST_CLUSTER_MASTER", "spark://127.0.0.1:7077")


@pytest.fixture(scope="module")
def cluster_input(generated_input):
    # a Windows-1252 file and a binary one: the quarantine path runs on the executors too
    return generated_input(rows=3000, seed=21, files=6, days=3, windows_1252_files=1, binary_files=1)


@pytest.fixture(scope="module")
def oracle_dir(cluster_input, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster-oracle")
    run_oracle(cluster_input, workdir)
    return workdir


@pytest.mark.parametrize("build", ["kappa", "lambda", "dstream"])
def test_each_build_on_the_standalone_cluster_equals_the_oracle(build, cluster_input, oracle_dir, tmp_path):
    workdir = tmp_path / "w"
    result = subprocess.run(
        LAB + ["run", build, "--master", MASTER, "--input", str(cluster_input), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    different = [
        query
        for query in QUERY_NAMES
        if export_path(workdir, build, query).read_bytes() != export_path(oracle_dir, "oracle", query).read_bytes()
    ]
    assert different == [], f"{build} on {MASTER} differs from the oracle on {different}"
