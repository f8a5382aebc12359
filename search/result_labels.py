"""What a search score means: same photo, same scene, looks alike or weak, read off the thresholds in force.

A cosine alone means nothing to a person ("0.74": is that a match?), and one "match" line low enough to keep
heavily edited copies lets unrelated places through. Each result gets one of four labels whose lines are the
thresholds in force (search/thresholds.py), so a recalibration or another backbone moves them with the
duplicate bands:

- same photo: at or above the near-duplicate threshold, the duplicate band (crops, rescales, recompressions,
  small edits);
- same scene: at or above the match threshold, which exposure brackets of one scene mostly reach and only
  0.01 % of pairs of different photos (bench/search_labels.py; a calibration measures it the same way);
- looks alike: at or above the similar threshold, about the 99th percentile of different photos' scores;
- weak: below it.

A search has a real match when some result is the same photo or the same scene; otherwise it says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from search.thresholds import ThresholdsInForce

SAME_PHOTO = "same_photo"
SAME_SCENE = "same_scene"
LOOKS_ALIKE = "looks_alike"
WEAK = "weak"
LABELS = (SAME_PHOTO, SAME_SCENE, LOOKS_ALIKE, WEAK)
MATCHING = (SAME_PHOTO, SAME_SCENE)

TITLES = {SAME_PHOTO: "same photo", SAME_SCENE: "same scene", LOOKS_ALIKE: "looks alike", WEAK: "weak"}
MEANINGS = {
    SAME_PHOTO: "the same picture: a copy, crop, resize, recompression or edit of it",
    SAME_SCENE: "the same scene: another exposure or frame of a burst, or a heavier edit of the same picture",
    LOOKS_ALIKE: "resembles it (subject, colours, layout): usually a different photo, sometimes a heavy edit of it",
    WEAK: "a different photo, only the closest there is",
}


@dataclass(frozen=True)
class LabelLines:
    """The lowest score of each label (weak is everything below looks_alike)."""

    same_photo: float
    same_scene: float
    looks_alike: float

    def label(self, similarity: float) -> str:
        if similarity >= self.same_photo:
            return SAME_PHOTO
        if similarity >= self.same_scene:
            return SAME_SCENE
        if similarity >= self.looks_alike:
            return LOOKS_ALIKE
        return WEAK

    def legend(self) -> list[dict[str, object]]:
        """Each label with its lowest score and what it means, best first (pages and the API)."""
        lowest = {SAME_PHOTO: self.same_photo, SAME_SCENE: self.same_scene, LOOKS_ALIKE: self.looks_alike, WEAK: None}
        return [
            {"label": label, "title": TITLES[label], "at_least": lowest[label], "meaning": MEANINGS[label]}
            for label in LABELS
        ]


def label_lines(thresholds: ThresholdsInForce) -> LabelLines:
    """The lines of the thresholds in force, kept in order whatever a variable or a calibration set (a match
    threshold above the near-duplicate one leaves no "same scene" band rather than a band out of order)."""
    same_photo = thresholds.near_duplicate
    same_scene = min(thresholds.match, same_photo)
    return LabelLines(same_photo=same_photo, same_scene=same_scene, looks_alike=min(thresholds.similar, same_scene))
