"""The results-file format (benchmarks/results.py) and the lessons' reader (gptlab.course.results)."""

import json
import sys
from pathlib import Path

import pytest

from gptlab import course

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import results as results_file  # noqa: E402


def test_write_then_read_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(results_file, "RESULTS", tmp_path)
    path = results_file.write("unit-test_1", {"loss": 1.5}, seeds=[1, 2])
    record = json.loads(path.read_text())
    assert record["figures"] == {"loss": 1.5} and record["seeds"] == [1, 2]
    for key in ("command", "date", "machine", "cpu_seconds"):
        assert record[key]
    assert record["machine"]["torch"]


def test_reader_refuses_paths_and_names_the_missing_file():
    with pytest.raises(ValueError, match="letters, digits"):
        course.results("../../etc/passwd")
    with pytest.raises(FileNotFoundError, match="no-such-run.json"):
        course.results("no-such-run")


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("*.json")), ids=lambda p: p.name)
def test_every_committed_results_file_says_how_it_was_made(path):
    record = course.results(path.stem)
    assert record["name"] == path.stem
    for key in ("figures", "command", "date", "machine", "seeds"):
        assert key in record, f"{path.name} lacks {key!r}"
    assert record["command"].startswith("python benchmarks/"), f"{path.name}: made by {record['command']!r}"
