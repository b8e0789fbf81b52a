"""shared/spark.py's class archive: `lab setup` writes it, every later driver JVM maps it,
and an archive that no longer fits (other jars, another Java) is not used."""

from dataclasses import replace
from pathlib import Path

from shared.settings import LabSettings
from shared.spark import _class_archive_options, class_archive


def _settings(home: Path) -> LabSettings:
    return replace(LabSettings.from_env({}), home=home)


def test_no_archive_no_option(tmp_path):
    assert _class_archive_options(_settings(tmp_path)) == ""


def test_an_archive_written_is_passed_to_the_driver_jvm(tmp_path):
    settings = _settings(tmp_path)
    archive = class_archive(settings)
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    options = _class_archive_options(settings)
    assert f"-XX:SharedArchiveFile={archive}" in options and "-Xshare:auto" in options


def test_other_jars_mean_another_archive(tmp_path):
    settings = _settings(tmp_path)
    before = class_archive(settings)
    jars = tmp_path / "ivy" / "jars"
    jars.mkdir(parents=True)
    (jars / "delta-spark_4.2_2.13-9.9.9.jar").write_bytes(b"")
    assert class_archive(settings) != before and class_archive(settings).parent == before.parent


def test_the_session_of_the_tests_starts_with_the_archive_setup_wrote(spark):
    """`make test` runs `lab setup` first: its archive is what this JVM was started with."""
    archive = class_archive()
    assert archive.exists(), f"{archive} missing: `lab setup` (make setup) writes it"
    jvm_arguments = list(
        spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert f"-XX:SharedArchiveFile={archive}" in jvm_arguments
