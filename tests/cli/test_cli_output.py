"""What a person sees of the command line: the run summary once, on stdout; a closed pipe is
not an error; the help is plain text."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest

from retrain.cli.main import build_parser, main


class ClosedPipe(io.StringIO):
    """A stdout whose reader has gone (`retrain models | head -1`)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_the_run_summary_is_printed_once(workspace):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["--config", str(workspace.settings.base_dir / "retrain.toml"), "run", "--local"])
    assert rc == 0, err.getvalue()
    assert out.getvalue().count("Retraining run (manual)") == 1
    # stderr has progress and the log channel's notice subjects, not the summary's table
    assert "Retraining run" not in err.getvalue() and "production before" not in err.getvalue()
    assert "notification: [retrain] retraining summary" in err.getvalue()
    assert "training lightgbm" in err.getvalue()  # progress still goes to stderr


def test_a_reader_that_stops_reading_is_not_an_error(workspace):
    config = str(workspace.settings.base_dir / "retrain.toml")
    main(["--config", config, "run", "--local"])
    err = io.StringIO()
    with redirect_stdout(ClosedPipe()), redirect_stderr(err):
        rc = main(["--config", config, "models"])
    assert rc == 0 and err.getvalue() == ""


def test_the_help_is_plain_text():
    text = build_parser().format_help()
    assert "`" not in text and text.splitlines()[2].startswith("Retrain tabular models")
    with pytest.raises(SystemExit) as done, redirect_stdout(io.StringIO()):
        main(["--help"])
    assert done.value.code == 0
