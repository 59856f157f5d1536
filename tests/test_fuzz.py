"""Property-based fuzzing of the input boundary (Hypothesis): mutated WAVs and bundles never give a traceback, a hang
or exit 0 from files that do not match their listing. `python -m bench.fuzz` runs the same strategies at length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from bench.fuzz import bundle_mutations, check_bundle_case, check_wav_case, wav_mutations

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(case=wav_mutations())
def test_mutated_wavs_end_cleanly(case: tuple[str, bytes], tmp_path: Path) -> None:
    check_wav_case(case[0], case[1], tmp_path / "wav")


@FUZZ
@given(m=bundle_mutations())
def test_mutated_bundles_end_cleanly_and_never_pass_tampered_files(m: dict[str, Any], tmp_path: Path) -> None:
    check_bundle_case(m, tmp_path / "b")
