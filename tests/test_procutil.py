"""Worker processes die with their parent; the command's own process never gets that tie."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_single_process_paths_run_under_setsid_nohup(tmp_path: Path) -> None:
    """synth-kws and feature building with one worker set up in the main process. They used to call
    die_with_parent() there, which exits at once when the parent is init (``setsid nohup edgekd ...``, a service).
    Here the command runs in a grandchild whose parent has already exited (parent = init or a subreaper)."""
    code = (
        "import os, time\n"
        "parent = os.getpid()\n"
        "if os.fork():\n    os._exit(0)\n"  # the child of this fork is orphaned: re-parented
        "while os.getppid() == parent: time.sleep(0.01)\n"
        "from edgekd.data.synth_kws import SynthKwsConfig, synth_kws\n"
        "from edgekd.train.features import build_feature_set\n"
        f"out = {str(tmp_path / 'kws')!r}\n"
        "synth_kws(out, SynthKwsConfig(per_word=1, unknown_total=2, silence_total=2, workers=1, engines=(('espeak', 1.0),)))\n"
        "fs = build_feature_set(out, ('yes', 'no', '_unknown_', '_silence_'), 'all', views=1, workers=1)\n"
        f"open({str(tmp_path / 'done')!r}, 'w').write(str(len(fs)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=300)
    assert proc.returncode == 0
    import time

    for _ in range(600):
        if (tmp_path / "done").is_file():
            break
        time.sleep(0.2)
    assert (tmp_path / "done").is_file() and int((tmp_path / "done").read_text()) > 0


def test_spawn_imap_keeps_order_and_leaves_no_worker() -> None:
    import multiprocessing

    from edgekd.core.procutil import spawn_imap

    assert list(spawn_imap(abs, [-3, 1, -2, 5, -8], 2, chunksize=2)) == [3, 1, 2, 5, 8]
    assert multiprocessing.active_children() == []


def test_spawn_imap_a_killed_worker_is_one_clear_error_not_a_hang() -> None:
    """multiprocessing.Pool replaces a worker that dies and waits for its task forever; spawn_imap says so."""
    import multiprocessing
    import os

    import pytest

    from edgekd.core.errors import ConfigError
    from edgekd.core.procutil import spawn_imap

    with pytest.raises(ConfigError, match="worker process died"):
        list(spawn_imap(os._exit, [3, 4], 2))
    assert multiprocessing.active_children() == []


def test_spawn_imap_stopped_early_stops_its_workers() -> None:
    import multiprocessing
    import time

    from edgekd.core.procutil import spawn_imap

    results = spawn_imap(time.sleep, [0.0] + [30.0] * 4, 2)
    assert next(results) is None
    results.close()
    assert multiprocessing.active_children() == []


def test_synthesis_workers_that_end_without_their_share_are_an_error() -> None:
    """The synthesis parent waits for each worker's None: a worker that died, or ended without it, is one line."""
    import os
    from multiprocessing import get_context

    import pytest

    from edgekd.core.errors import ConfigError
    from edgekd.data.synth_kws import _collect_shares

    ctx = get_context("spawn")
    for code, message in ((0, "ended without finishing its share"), (3, r"died \(exit code 3\)")):
        messages = ctx.Queue()
        procs = [ctx.Process(target=os._exit, args=(code,))]
        procs[0].start()
        with pytest.raises(ConfigError, match=message):
            _collect_shares(messages, procs, 1, None)
        procs[0].join()
    messages = ctx.Queue()
    procs = [ctx.Process(target=messages.put, args=(1,)), ctx.Process(target=messages.put, args=(None,))]
    for p in procs:
        p.start()
    seen: list[int] = []
    with pytest.raises(ConfigError, match="ended without"):  # one said its clip and None never came from it
        _collect_shares(messages, procs, 1, lambda done, total: seen.append(done))
    assert seen == [1]
    for p in procs:
        p.join()


def test_spawn_imap_a_failing_initializer_is_one_line(capfd) -> None:  # type: ignore[no-untyped-def]
    """Not a traceback from the pool's logger and not 'a worker died': what the initializer said."""
    import multiprocessing

    import pytest

    from edgekd.core.errors import ConfigError
    from edgekd.core.procutil import spawn_imap

    with pytest.raises(ConfigError, match=r"could not start: ValueError: invalid literal"):
        list(spawn_imap(abs, [1, 2, 3], 2, initializer=int, initargs=("x",)))
    assert "Traceback" not in capfd.readouterr().err
    assert multiprocessing.active_children() == []
