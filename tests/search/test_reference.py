"""docs/config.md is generated from the code's tables; it must be what the generator writes now."""

from pathlib import Path

from hypermodels.dimensions import AUGMENTATION, BATCHNORM, CNN_MODEL, RESNET_MODEL, SCHEDULE, TRANSFER_MODEL
from search import config
from search.reference import config_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_committed_config_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == config_reference(), (
        "docs/config.md is out of date: run `python -m search.reference docs/config.md` and commit it"
    )


def test_every_key_and_dimension_is_documented():
    text = config_reference()
    for section in config.SECTIONS.values():
        for key in section.keys():
            assert f"| `{key}` |" in text, key
    for table in (AUGMENTATION, BATCHNORM, SCHEDULE, CNN_MODEL, RESNET_MODEL, TRANSFER_MODEL):
        for key in table:
            assert f"| `{key}` |" in text, key
