"""scripts/lowest_versions.py: the floors scripts/test-lowest.sh installs and checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lowest_versions", ROOT / "scripts" / "lowest_versions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lv = _script()


def test_floors_of_the_package_and_its_extras() -> None:
    pins = dict(lv.pins(lv.requirements()))
    # The core's, then each of EXTRAS'; an extra's same-version package beside its owner.
    assert pins["langgraph-checkpoint"] == "4.3"
    assert pins["msgpack"] == "1.0.8"
    assert pins["psycopg"] == pins["psycopg-binary"] == "3.2.1"
    assert pins["redis"] == "7.4.1"
    assert {"aiosqlite", "psycopg-pool", "pycryptodome"} <= pins.keys()
    assert "hiredis" not in pins  # versioned on its own: left to pip
    # LangGraph from the all extra: the first to hand the schema's types to the saver.
    assert pins["langgraph"] == "1.0.10"
    # The all extra's checkpointers[...] only gathers extras; the package is not its own floor.
    assert "checkpointers" not in pins
    # Test-only packages of the dev extra are not the package's dependencies.
    assert not {"pytest", "langgraph-cli", "langgraph-checkpoint-sqlite"} & pins.keys()


def test_settle_prints_langgraph_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert lv.main(["--settle"]) == 0
    assert capsys.readouterr().out.split() == ["langgraph==1.0.10"]


def test_command_prints_pip_pins(capsys: pytest.CaptureFixture[str]) -> None:
    assert lv.main([]) == 0
    lines = capsys.readouterr().out.split()
    assert "langgraph-checkpoint==4.3" in lines
    assert all(line.count("==") == 1 for line in lines)


@pytest.mark.parametrize("text", ["msgpack>=1.0", "msgpack<2", "msgpack", "msgpack==1.0.8"])
def test_a_dependency_must_be_a_range(text: str) -> None:
    with pytest.raises(ValueError, match=r"must be a range 'name>=low,<high'") as info:
        lv.floor(Requirement(text))
    assert "msgpack" in str(info.value)


def test_an_extra_without_a_rule_is_refused() -> None:
    with pytest.raises(ValueError, match=r"extra 'c'.*_EXTRA_PACKAGES"):
        lv.pins([Requirement("psycopg[c]>=3.2.1,<4")])


def test_mismatches_name_what_is_not_at_its_floor() -> None:
    installed = __import__("packaging").__version__
    assert lv.mismatches([("packaging", installed)]) == []
    assert lv.mismatches([("packaging", installed + ".1")]) == [
        f"packaging: {installed} installed, the floor is {installed}.1"
    ]
    assert lv.mismatches([("no-such-distribution-xyz", "1.0")]) == [
        "no-such-distribution-xyz: nothing installed, the floor is 1.0"
    ]


def test_check_fails_off_the_floors(capsys: pytest.CaptureFixture[str]) -> None:
    """In the dev environment the newest versions are installed: `--check` says which differ."""
    wanted = lv.pins(lv.requirements())
    wrong = lv.mismatches(wanted)
    status = lv.main(["--check"])
    err = capsys.readouterr().err
    assert status == (1 if wrong else 0)
    for line in wrong:
        assert line in err


def test_newest_leaves_a_package_out(capsys: pytest.CaptureFixture[str]) -> None:
    # .ci/run's delta-channel stage: the other floors, LangGraph at its newest.
    assert lv.main(["--newest", "langgraph"]) == 0
    lines = capsys.readouterr().out.split()
    assert "langgraph-checkpoint==4.3" in lines
    assert not [line for line in lines if line.startswith("langgraph==")]
    assert lv.main(["--settle", "--newest", "langgraph"]) == 0
    assert capsys.readouterr().out.split() == []


def test_newest_checks_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    wanted = [(n, v) for n, v in lv.pins(lv.requirements()) if n != "langgraph"]
    status = lv.main(["--check", "--newest", "langgraph"])
    err = capsys.readouterr().err
    assert status == (1 if lv.mismatches(wanted) else 0)
    assert "langgraph:" not in err


def test_newest_must_name_a_dependency(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lv.main(["--newest", "pytest"])
    assert exit_info.value.code == 2
    assert "--newest pytest: not a dependency with a floor" in capsys.readouterr().err
