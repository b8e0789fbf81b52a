"""What a checkpoint holds, read from its files: crash leftovers are cleared, other logic
is refused with the replay remedy, and neither is guessed from an exception's words."""
import json
from pathlib import Path

import pytest

from shared import checkpoints
from shared.checkpoints import CheckpointMismatch


def _leftovers_of_a_crashed_start(root: Path) -> None:
    """What a SIGKILL in the first micro-batch leaves (seen on Spark 4.2): a temporary
    offsets file that was never renamed, and the state store's metadata."""
    (root / "offsets").mkdir(parents=True)
    (root / "offsets" / ".0.5f1c2d3e-tmp").write_text("v1\n")
    (root / "state" / "0" / "_metadata").mkdir(parents=True)
    (root / "state" / "0" / "_metadata" / "metadata").write_text("{}")
    (root / "commits").mkdir()
    (root / "metadata").write_text('{"id":"8d0f5f8e-0000-4000-8000-000000000001"}\n')


def test_a_checkpoint_without_a_planned_batch_loses_its_leftovers_and_keeps_its_id(tmp_path):
    root = tmp_path / "ckpt"
    _leftovers_of_a_crashed_start(root)
    removed = checkpoints.clear_unstarted(root)
    assert removed == ["offsets/.0.5f1c2d3e-tmp", "state/0"]
    assert not (root / "offsets").exists() and not (root / "state").exists()
    assert checkpoints.query_id(root) == "8d0f5f8e-0000-4000-8000-000000000001"
    assert checkpoints.clear_unstarted(root) == []  # nothing more to clear


def test_a_checkpoint_with_a_planned_batch_is_never_touched(tmp_path):
    root = tmp_path / "ckpt"
    _leftovers_of_a_crashed_start(root)
    (root / "offsets" / "0").write_text("v1\n{}\n")  # batch 0 planned: its input is fixed
    assert checkpoints.planned_batches(root) == [0] and checkpoints.committed_batches(root) == []
    assert checkpoints.clear_unstarted(root) == []
    assert (root / "state" / "0" / "_metadata" / "metadata").exists()


def _f(x):
    return x + 1


def _g(x):
    return x + 2


def test_other_logic_on_a_used_checkpoint_is_refused_with_the_remedy(tmp_path):
    root = tmp_path / "ckpt"
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_f, 3600]), "Replay it.")
    assert json.loads((root / checkpoints.LOGIC_FILE).read_text())["query"] == "q"
    (root / "offsets").mkdir()
    (root / "offsets" / "0").write_text("v1\n{}\n")
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_f, 3600]), "Replay it.")  # same logic: fine
    for other in ([_g, 3600], [_f, 7200]):
        with pytest.raises(CheckpointMismatch, match="different query logic.*Replay it."):
            checkpoints.check_logic(root, "q", checkpoints.fingerprint(other), "Replay it.")


def test_other_logic_on_an_unused_checkpoint_just_records_the_new_logic(tmp_path):
    root = tmp_path / "ckpt"
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_f]), "Replay it.")
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_g]), "Replay it.")
    assert json.loads((root / checkpoints.LOGIC_FILE).read_text())["logic"] == checkpoints.fingerprint([_g])


def test_prepare_reports_what_it_cleared(tmp_path):
    root = tmp_path / "ckpt"
    _leftovers_of_a_crashed_start(root)
    said = []
    checkpoints.prepare(root, "kappa_v1_log", "abc", "Replay it.", said.append)
    assert len(said) == 1 and "a crash before the first one" in said[0] and "offsets/.0.5f1c2d3e-tmp" in said[0]
