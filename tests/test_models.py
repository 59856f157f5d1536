import pytest

torch = pytest.importorskip("torch", reason="training extra")

from edgekd.train.profile import count_macs, count_params  # noqa: E402
from edgekd.train.students import STUDENTS, build_model  # noqa: E402


def test_registry_sizes_match_their_descriptions() -> None:
    sizes = {name: count_params(build_model(name, 12, 40)) for name in STUDENTS}
    assert 20_000 <= sizes["dscnn"] <= 40_000
    assert 8_000 <= sizes["bcresnet1"] <= 12_000
    assert sizes["cnn-teacher"] >= 20 * sizes["dscnn"]


@pytest.mark.parametrize("name", list(STUDENTS))
def test_forward_shape_and_macs(name: str) -> None:
    m = build_model(name, 12, 40).eval()
    assert m(torch.zeros(3, 98, 40)).shape == (3, 12)
    assert count_macs(m, (1, 98, 40)) > count_params(m)
