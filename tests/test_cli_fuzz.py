"""CLI fuzz (issues #15 and #17): every option of every command, fed invalid values by hypothesis, gives a
non-zero exit (2, bad input), exactly one line ``error: ...`` naming the option, and no traceback.

:data:`INVALID` holds, per command and option, a strategy of invalid values and the valid invocation the
value is put into; :func:`test_every_option_is_fuzzed` fails when a command grows an option that is not
fuzzed here. Flags are fuzzed by giving them a value (``--json=x``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dltheory.cli import app
from dltheory.core.activations import ACTIVATIONS
from dltheory.data import LOADERS as DATASETS
from dltheory.exitcodes import ExitCode
from dltheory.experiments.registry import experiments

runner = CliRunner()
WORK = Path(__file__).parent  # replaced per session by the `files` fixture
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)


def _fails(parse):
    def check(text: str) -> bool:
        try:
            value = parse(text)
        except (TypeError, ValueError, OverflowError):
            return True
        return isinstance(value, float) and not math.isfinite(value)

    return check


NOT_FLOAT = TEXT.filter(lambda s: _fails(float)(s) and s.strip().lower() not in ("nan", "inf", "-inf"))
NOT_INT = TEXT.filter(_fails(int))
NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "NaN"])
NEGATIVE = st.floats(max_value=-1e-6, min_value=-1e12, allow_nan=False).map(repr)
NEGATIVE_INT = st.integers(max_value=-1, min_value=-(10**9)).map(str)


def floats_not(*, positive: bool) -> st.SearchStrategy[str]:
    """Strings that are not finite floats, negative ones, and (``positive``) zero."""
    bad = [NOT_FLOAT, NON_FINITE, NEGATIVE]
    if positive:
        bad.append(st.sampled_from(["0", "0.0", "-0"]))
    return st.one_of(*bad)


def ints_not(*, minimum: int) -> st.SearchStrategy[str]:
    return st.one_of(NOT_INT, st.integers(max_value=minimum - 1, min_value=-(10**9)).map(str))


def not_in(valid) -> st.SearchStrategy[str]:
    options = {str(v) for v in valid}
    return TEXT.filter(lambda s: s not in options)


DEVICES = TEXT.filter(lambda s: s.strip().lower() not in ("auto", "cpu"))
NAMES = st.one_of(
    st.sampled_from(["", ".", "..", "../escape", "a/b", "-x", " spaced", "x" * 101]),
    TEXT.filter(lambda s: s == "" or not (s[0].isalnum() and all(c.isalnum() or c in "._-" for c in s))),
)
MISSING_PATH = TEXT.filter(lambda s: s.strip() != "" and "/" not in s).map(lambda s: f"no-such-dir/{s}")

# command path -> option name -> (strategy of invalid values, base arguments, extra base arguments)
# base arguments are a valid invocation; {work} is replaced by a scratch directory with valid files.
BASE = {
    "run": ["run", "laurent-counterexample", "-p", "tiny", "-o", "{work}/runs", "--resume"],
    "reproduce": [
        "reproduce",
        "-p",
        "tiny",
        "--only",
        "laurent-counterexample",
        "-o",
        "{work}/runs",
        "--no-records",
    ],  # fmt: skip
    "report": ["report", "{work}/runs", "--no-records"],
    "record": ["record", "{work}/runs/laurent-counterexample/tiny", "--store", "{work}/store", "--replace"],
    "certify": ["certify", "{work}/w.npz", "--data", "{work}/d.npz", "--hessian", "dense"],
    "diagnose": [
        "diagnose",
        "dltheory.nn.models:VanillaCNN",
        "--set",
        "depth=2",
        "--set",
        "channels=4",
        "--input-shape",
        "1,8,8",
        "--batch",
        "4",
        "--pairs",
        "2",
        "--no-plot",
    ],  # fmt: skip
    "learning-curve": ["learning-curve"],
    "meanfield": ["meanfield", "--sigma-w2", "1.5"],
    "list": ["list"],
    "data list": ["data", "list"],
    "data check": ["data", "check"],
}

INVALID: dict[str, dict[str, tuple[st.SearchStrategy[str], list[str]]]] = {
    "run": {
        "experiment": (not_in(experiments()), []),
        "profile": (not_in(["tiny", "quick", "paper"]), []),
        "out": (st.just("{work}/a-file"), []),
        "seed": (ints_not(minimum=0), []),
        "sets": (st.one_of(TEXT.filter(lambda s: "=" not in s), st.just("depth=3"), st.just("seed=one")), []),
        "name": (NAMES, []),
        "device": (DEVICES, []),
    },
    "reproduce": {
        "profile": (not_in(["tiny", "quick", "paper"]), []),
        "out": (st.just("{work}/a-file"), []),
        "only": (not_in(experiments()), []),
        "records_dir": (MISSING_PATH, []),
        "device": (DEVICES, []),
    },
    "report": {
        "runs_dir": (st.one_of(MISSING_PATH, st.just("{work}/a-file")), []),
        "records_dir": (MISSING_PATH, []),
    },
    "record": {
        "run_dir": (st.one_of(MISSING_PATH, st.just("{work}")), []),
        "name": (NAMES, []),
        "store": (st.just("{work}/a-file"), []),
    },
    "certify": {
        "weights": (
            st.one_of(MISSING_PATH, st.sampled_from(["{work}/a-file", "{work}", "{work}/d.npz"])),
            [],
        ),
        "loss": (not_in(["squared", "lp", "cross_entropy", "logistic", "huber", "hinge", "l1"]), []),
        "data": (st.one_of(MISSING_PATH, st.sampled_from(["{work}/a-file", "{work}/w.npz"])), []),
        "l2": (floats_not(positive=False), []),
        "p": (
            st.one_of(NOT_FLOAT, NON_FINITE, st.floats(max_value=1.0, min_value=-1e6).map(repr)),
            ["--loss", "lp"],
        ),  # fmt: skip
        "delta": (floats_not(positive=True), ["--loss", "huber"]),
        "hessian": (not_in(["auto", "dense", "lanczos", "arpack", "none"]), []),
        "seed": (ints_not(minimum=0), []),
    },
    "diagnose": {
        "factory": (
            st.sampled_from(["no_such_module:f", "dltheory.nn.models", "dltheory.nn.models:nope", ":"]),
            [],
        ),
        "input_shape": (st.sampled_from(["", "a,b", "0", "-1,28", "1,,2", "1.5"]), []),
        "batch": (ints_not(minimum=1), []),
        "data": (not_in(["mnist", "fashion-mnist", "cifar10", "digits"]), []),
        "sets": (TEXT.filter(lambda s: "=" not in s), []),
        "pairs": (ints_not(minimum=1), []),
        "seed": (ints_not(minimum=0), []),
        "out": (st.just("{work}"), ["--plot"]),
        "growth_target": (
            st.one_of(NOT_FLOAT, NON_FINITE, st.floats(max_value=1.0, min_value=-1e6).map(repr)),
            [],
        ),
    },
    "learning-curve": {
        "mu_norm2": (floats_not(positive=True), []),
        "p": (ints_not(minimum=1), []),
        "n": (ints_not(minimum=1), []),
        "sigma2": (floats_not(positive=False), []),
        "alpha": (st.one_of(floats_not(positive=True), st.just("1e9")), []),
        "ridge": (floats_not(positive=False), []),
        "step": (ints_not(minimum=0), []),
    },
    "data check": {"only": (not_in(DATASETS), [])},
    "meanfield": {
        "activation": (not_in(ACTIVATIONS), []),
        "sigma_b2": (floats_not(positive=False), []),
        "sigma_w2": (floats_not(positive=True), []),
    },
}


def _commands() -> dict[str, object]:
    found: dict[str, object] = {}

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()
CASES = [
    (command, param.name)
    for command, cmd in COMMANDS.items()
    for param in cmd.params  # type: ignore[attr-defined]
    if param.name != "help"
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Valid inputs for the base invocations: weights and data of a deep linear network, a completed run."""
    work = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    np.savez(work / "w.npz", W1=rng.normal(size=(3, 2)), W2=rng.normal(size=(2, 3)))
    np.savez(work / "d.npz", X=rng.normal(size=(10, 2)), Y=rng.normal(size=(10, 2)))
    (work / "a-file").write_text("not a directory")
    (work / "store").mkdir()
    done = runner.invoke(app, _expand(BASE["run"][:-1], work))
    assert done.exit_code == 0, done.output
    return work


def _expand(args, work):
    return [a.replace("{work}", str(work)) for a in args]


def _option(command: str, name: str):
    return next(p for p in COMMANDS[command].params if p.name == name)  # type: ignore[attr-defined]


def test_every_option_is_fuzzed():
    flags = {(c, n) for c, n in CASES if getattr(_option(c, n), "is_flag", False)}
    missing = [case for case in CASES if case not in flags and case[1] not in INVALID.get(case[0], {})]
    assert not missing, f"options without invalid values in INVALID: {missing}"
    assert set(BASE) == set(COMMANDS), "every command needs a valid base invocation in BASE"


@pytest.mark.parametrize("command", sorted(BASE))
def test_base_invocations_are_valid(command, work):
    """The fuzz below changes one option of these: each must succeed as it is."""
    result = runner.invoke(app, _expand(BASE[command], work))
    assert result.exit_code == 0, result.output


def _invocation(command: str, name: str, value: str, extra: list[str], work: Path) -> list[str]:
    param = _option(command, name)
    args = BASE[command] + extra
    if "--plot" in extra:  # the figure path matters only when a figure is drawn
        args = [a for a in args if a not in ("--plot", "--no-plot")]
    base = _expand(args, work)
    value = value.replace("{work}", str(work))
    if param.param_type_name == "argument":
        position = len(command.split())  # the argument follows the command words
        return base[:position] + [value] + base[position + 1 :]
    return [*base, f"{param.opts[0]}={value}"]  # the last occurrence of an option wins


def _assert_rejected(result, command: str, name: str, value: str) -> None:
    output = result.output
    assert "Traceback" not in output, output
    assert result.exit_code == ExitCode.BAD_INPUT, (
        f"{command} {name}={value!r}: exit {result.exit_code}\n{output}"
    )
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), (
        f"{command} {name}={value!r}:\n{result.stderr}"
    )
    param = _option(command, name)
    names = {o.lstrip("-").replace("_", "-").lower() for o in param.opts} | {name.replace("_", "-")}
    line = errors[0].lower().replace("_", "-")
    assert any(n in line for n in names), f"{command}: the error does not name {sorted(names)}: {errors[0]}"


@pytest.mark.parametrize(
    ("command", "name"), [pytest.param(c, n, id=f"{c}-{n}") for c, n in CASES if n in INVALID.get(c, {})]
)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_invalid_values_are_rejected_on_one_line(command, name, work, data):
    strategy, extra = INVALID[command][name]
    value = data.draw(strategy, label=f"{command} {name}")
    result = runner.invoke(app, _invocation(command, name, value, extra, work))
    _assert_rejected(result, command, name, value)


@pytest.mark.parametrize(("command", "name"), [(c, n) for c, n in CASES if n not in INVALID.get(c, {})])
def test_flags_take_no_value(command, name, work):
    param = _option(command, name)
    assert param.is_flag
    result = runner.invoke(app, [*_expand(BASE[command], work), f"{param.opts[0]}=maybe"])
    _assert_rejected(result, command, name, "maybe")
