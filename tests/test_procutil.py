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
