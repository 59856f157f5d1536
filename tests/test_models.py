import pytest

torch = pytest.importorskip("torch", reason="training extra")

from edgekd.train.models import ARCHITECTURES, build_model  # noqa: E402
from edgekd.train.profile import count_macs, count_params  # noqa: E402


def test_registry_sizes_match_their_descriptions() -> None:
    sizes = {name: count_params(build_model(name, 12, 40)) for name in ARCHITECTURES}
    assert 20_000 <= sizes["dscnn"] <= 40_000
    assert 8_000 <= sizes["bcresnet1"] <= 12_000
    assert 20_000 <= sizes["dscnn-stream-64"] <= 26_000 and 70_000 <= sizes["dscnn-stream-128"] <= 85_000
    assert sizes["cnn-teacher"] >= 20 * sizes["dscnn"]
    assert sizes["sed-crnn"] >= 10 * sizes["sed-causal-cnn"]  # the SED student is at least 10x smaller


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_forward_shape_and_macs(name: str) -> None:
    from edgekd.train.catalog import CATALOG

    if CATALOG[name].input == "speech-embedding":  # a head on the frozen embedding's 9 frames x 96
        m = build_model(name, 12, 96).eval()
        assert m(torch.zeros(3, 9, 96)).shape == (3, 12)
        assert count_macs(m, (1, 9, 96)) > 0.9 * count_params(m)
        return
    m = build_model(name, 12, 40).eval()
    if ARCHITECTURES[name].task == "sed":  # one logit vector per 4 input frames
        assert m(torch.zeros(3, 100, 40)).shape == (3, 25, 12)
    else:
        assert m(torch.zeros(3, 98, 40)).shape == (3, 12)
    assert count_macs(m, (1, 100 if ARCHITECTURES[name].task == "sed" else 98, 40)) > count_params(m)


def test_registry_holds_students_and_teachers_apart() -> None:
    from edgekd.train.catalog import CATALOG
    from edgekd.train.models import STUDENTS, TEACHERS

    assert not set(STUDENTS) & set(TEACHERS)
    assert set(STUDENTS) | set(TEACHERS) == set(CATALOG)
    for reg, role in ((STUDENTS, "student"), (TEACHERS, "teacher")):
        for a in reg.values():
            assert a.role == role == CATALOG[a.name].role
            module = getattr(a.builder, "func", a.builder).__module__
            assert module.startswith(f"edgekd.train.models.{role}s."), (a.name, module)
