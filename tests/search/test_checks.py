"""Start-up checks name a wrong model setting before any upload fails."""

from __future__ import annotations

from search.checks import embedding_settings_check


def test_unknown_backbone_is_an_error(settings):
    settings.IMGSIM_MODEL = "resnet-eighteen"
    (message,) = embedding_settings_check()
    assert message.id == "imgsim.E001"
    assert "resnet18" in message.hint


def test_missing_weights_file_is_a_warning(settings, tmp_path):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "nope.pth")
    (message,) = embedding_settings_check()
    assert message.id == "imgsim.W001"
    assert "nope.pth" in message.msg


def test_good_settings_pass(settings):
    assert embedding_settings_check() == []
