"""shared/settings.py: every LAB_* variable is in one table, and its defaults are the settings' own."""

from pathlib import Path

import pytest

from shared.settings import ENVIRONMENT, LabSettings, WorkloadSettings, default_driver_memory, default_lab_home


def test_the_table_shows_the_defaults_the_settings_use():
    defaults = LabSettings()
    for variable in ENVIRONMENT:
        owner = defaults.workload if hasattr(defaults.workload, variable.setting) else defaults
        value = getattr(owner, variable.setting)
        if variable.name == "LAB_HOME":
            assert value == default_lab_home() and variable.default == ".lab/"
        elif variable.name == "LAB_DRIVER_MEMORY":  # depends on the machine: the rule is shown
            assert value == default_driver_memory() and variable.default == "1/6 of RAM, 1g-8g"
        elif isinstance(value, bool):
            assert variable.default == ("1" if value else "0")
        else:
            assert variable.default == str(value), variable.name


def test_unset_or_empty_variables_mean_the_defaults():
    assert LabSettings.from_env({}) == LabSettings()
    assert LabSettings.from_env({variable.name: "" for variable in ENVIRONMENT}) == LabSettings()


def test_every_variable_is_read():
    env = {
        "LAB_SPARK_MASTER": "spark://h:7077",
        "LAB_SHUFFLE_PARTITIONS": "8",
        "LAB_SPARK_UI": "1",
        "LAB_KAFKA_BOOTSTRAP": "k:9093",
        "LAB_HOME": "/tmp/lab-home",
        "LAB_WINDOW_SECONDS": "7200",
        "LAB_SLIDE_SECONDS": "600",
        "LAB_WATERMARK_SECONDS": "3600",
        "LAB_DRIVER_MEMORY": "5g",
        "LAB_DRAIN_BATCH_MB": "8",
        "LAB_BATCH_JVM_OPTIONS": "-XX:TieredStopAtLevel=4",
        "LAB_BATCH_JVM_MAX_MB": "16",
        "LAB_COMPACT_EVERY_BATCHES": "5",
    }
    assert set(env) == {variable.name for variable in ENVIRONMENT}
    settings = LabSettings.from_env(env)
    assert (
        settings.spark_master,
        settings.shuffle_partitions,
        settings.spark_ui,
        settings.kafka_bootstrap,
        settings.home,
        settings.driver_memory,
        settings.drain_batch_mb,
        settings.batch_jvm_options,
        settings.batch_jvm_max_mb,
        settings.compact_every_batches,
    ) == ("spark://h:7077", 8, True, "k:9093", Path("/tmp/lab-home"), "5g", 8, "-XX:TieredStopAtLevel=4", 16, 5)
    assert settings.workload == WorkloadSettings(window_seconds=7200, slide_seconds=600, watermark_seconds=3600)
    assert WorkloadSettings.from_env(env) == settings.workload


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LAB_SHUFFLE_PARTITIONS": "0"}, "LAB_SHUFFLE_PARTITIONS"),
        ({"LAB_WATERMARK_SECONDS": "2h"}, "LAB_WATERMARK_SECONDS"),
        ({"LAB_WINDOW_SECONDS": "3600", "LAB_SLIDE_SECONDS": "1700"}, "multiple of the slide"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        LabSettings.from_env(env)


def test_the_driver_heap_is_a_sixth_of_the_machine_within_bounds(monkeypatch):
    from shared import settings

    for total_gib, expected in ((2, "1g"), (24, "4g"), (64, "8g")):
        monkeypatch.setattr(settings, "machine_memory_bytes", lambda t=total_gib: t * 2**30)
        assert settings.default_driver_memory() == expected
    monkeypatch.setattr(settings, "machine_memory_bytes", lambda: None)
    assert settings.default_driver_memory() == "1g"


def test_a_bad_driver_memory_is_refused_by_name():
    with pytest.raises(ValueError, match="LAB_DRIVER_MEMORY"):
        LabSettings.from_env({"LAB_DRIVER_MEMORY": "lots"})
    assert LabSettings.from_env({"LAB_DRIVER_MEMORY": "6G"}).driver_memory == "6g"


def test_a_process_that_runs_to_its_end_gets_the_batch_jvm_options_and_a_long_lived_one_does_not():
    from shared.spark import JVM_OPTIONS, lab_jvm_options, spark_errors_log

    settings = LabSettings.from_env({"LAB_BATCH_JVM_OPTIONS": "-XX:TieredStopAtLevel=1 -Xss4m", "LAB_HOME": "/srv/lab"})
    every = f"{JVM_OPTIONS} -Dlab.spark.errors=/srv/lab/logs/spark-errors.log"  # Spark's failure reports
    assert spark_errors_log(settings) == Path("/srv/lab/logs/spark-errors.log")
    assert lab_jvm_options(settings, long_lived=False) == f"{every} -XX:TieredStopAtLevel=1 -Xss4m"
    assert lab_jvm_options(settings, long_lived=True) == every


def test_the_driver_jvm_runs_with_the_lab_jvm_options(spark):
    """The options reach the JVM itself, not only Spark's configuration (the test session is
    long-lived: the lab's own options, not the batch ones)."""
    from shared.spark import lab_jvm_options

    arguments = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    expected = lab_jvm_options(LabSettings.from_env(), long_lived=True).split()
    assert set(expected) <= set(arguments), arguments
    assert not set(LabSettings.from_env().batch_jvm_options.split()) & set(arguments), arguments


def test_a_drain_of_a_large_input_keeps_the_jvms_default_compilers(tmp_path):
    """C1 only pays for a short process: over LAB_BATCH_JVM_MAX_MB of sales files a drain or a
    baseline keeps the JVM's defaults, as a --follow service does."""
    from shared.inputs import inspect_input
    from shared.spark import lives_long

    settings = LabSettings.from_env({"LAB_BATCH_JVM_MAX_MB": "1"})
    assert not lives_long(2**20, settings) and lives_long(2**20 + 1, settings)
    assert not lives_long(40 * 2**20) and lives_long(60 * 2**20)  # the default: 48 MB
    (tmp_path / "sales_0000.csv").write_bytes(b"x" * 700)
    (tmp_path / "sales_0001.csv").write_bytes(b"y" * 500)
    assert inspect_input(tmp_path).sales_bytes == 1_200
