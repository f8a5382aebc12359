"""The topology bench's figures (bench/topology.py), from made-up samples, task results and log lines: what it
prints is computed right without starting an instance."""

from __future__ import annotations

from datetime import datetime

from bench.topology import (
    DETECT_TASK,
    EMBED_TASK,
    REBUILD_TASK,
    Figures,
    LogRun,
    Sample,
    TaskRun,
    checks_from_log,
    figures_from,
    result_table,
    runs_from_log,
    settled_at,
    task_tallies,
    timeline_rows,
    upload_plan,
    work_done,
)


def _sample(t: float, *, queued: int = 0, awaiting: int = 0, checked: int = 0, **extra: object) -> Sample:
    return Sample(t=t, uploaded=10, queued=queued, searchable=10 - queued, awaiting=awaiting, checked=checked, **extra)


def test_settled_is_the_start_of_the_last_unbroken_stretch_and_never_before_the_given_moment():
    samples = [_sample(0), _sample(1, queued=3), _sample(2), _sample(3, queued=1), _sample(4), _sample(5)]
    drained = lambda sample: sample.queued == 0  # noqa: E731
    assert settled_at(samples, 0.0, drained) == 4
    assert settled_at(samples, 4.5, drained) == 4.5  # already drained when the last upload was answered
    assert settled_at([*samples, _sample(6, queued=2)], 0.0, drained) is None


def test_figures_time_the_drain_and_the_catch_up_from_the_last_upload_and_count_repeated_checks():
    # given embedding that drains 5 s after the last upload (t=10) and detection that catches up 70 s later
    samples = [
        _sample(0, queued=10),
        _sample(10, queued=4, awaiting=2, checked=4, pending_tasks={EMBED_TASK: 1, REBUILD_TASK: 1}),
        _sample(15, awaiting=6, checked=4, pending_tasks={DETECT_TASK: 1, EMBED_TASK: 3}),
        _sample(85, checked=10, pending_tasks={EMBED_TASK: 2}),
        _sample(90, checked=10),
    ]
    # and two clusters whose detection runs checked 14 images for 10 checked
    runs = [
        TaskRun(func=DETECT_TASK, queued=9, stopped=40, success=True, work=8),
        TaskRun(func=DETECT_TASK, queued=9, stopped=84, success=True, work=6),
        TaskRun(func=REBUILD_TASK, queued=12, stopped=86, success=True, work=None),
    ]
    figures = figures_from(samples, runs, last_upload=10.0)
    assert (figures.drained_after_last_upload, figures.caught_up_after_last_upload) == (5, 75)
    assert figures.caught_up_after_drained == 70
    assert figures.goal_met is False
    assert (figures.checks_run, figures.images_checked, figures.checks_per_image) == (14, 10, 1.4)
    assert figures.index_requested == 10  # seen in the broker before its run's own queueing time
    assert figures.pending_at_caught_up == {EMBED_TASK: 2}
    assert figures.max_pending == {EMBED_TASK: 3, REBUILD_TASK: 1, DETECT_TASK: 1}
    assert figures.embed_rate == 10 / 15
    assert figures.detect_rate == 10 / 75
    # when detection catches up within a minute of the drain, the goal is met
    assert figures_from([*samples[:3], _sample(70, checked=10)], runs, last_upload=10.0).goal_met is True


def test_checks_come_from_the_cluster_logs_when_the_detection_results_do_not_say():
    runs = [TaskRun(func=DETECT_TASK, queued=0, stopped=1, success=True, work=work_done(DETECT_TASK, {"pairs": 3}))]
    unknown = figures_from([_sample(0, checked=5)], runs, last_upload=0.0)
    assert unknown.checks_run is None
    assert unknown.checks_per_image is None
    assert "? / 5" in result_table(unknown, task_tallies(runs))
    log = [
        "2026-12-07 06:06:54,824 INFO duplicates.services.detection: duplicate detection: "
        "DetectSummary(queried=4, pairs=9, created=9, updated=0, remembered=0, verified=3), 0 failed",
        "2026-12-07 06:07:54,824 INFO duplicates.services.detection: duplicate detection: DetectSummary(queried=2)",
    ]
    assert checks_from_log(log) == 6
    assert checks_from_log(log[:0]) is None
    logged = figures_from([_sample(0, checked=5)], runs, last_upload=0.0, logged_checks=6)
    assert logged.checks_per_image == 1.2


def test_nothing_is_reached_when_the_uploads_did_not_finish():
    figures = figures_from([_sample(0, queued=3)], [], last_upload=None)
    assert figures.drained is None
    assert figures.caught_up is None
    assert figures.goal_met is None
    table = result_table(figures, {})
    assert "not reached" in table
    assert "not measured" in table


def test_run_times_come_from_each_clusters_log_even_when_two_runs_of_a_task_overlap():
    origin = datetime(2026, 12, 7, 6, 0, 0).timestamp()
    log = [
        f"2026-12-07 06:00:01,000 INFO django-q: Process-aa processing detect duplicates '{DETECT_TASK}'",
        f"2026-12-07 06:00:02,500 INFO django-q: Process-bb processing detect duplicates '{DETECT_TASK}'",
        "2026-12-07 06:00:03,000 INFO duplicates.services.detection: duplicate detection: DetectSummary(queried=3)",
        "2026-12-07 06:00:04,000 INFO django-q: Processed 'duplicates.tasks.detect_pending' (detect duplicates)",
        "2026-12-07 06:00:05,000 INFO django-q: Process-aa processing ten-red 'gallery.tasks.purge_expired_trash' "
        "[imgsim: purge expired trash]",
        "2026-12-07 06:00:05,250 ERROR django-q: Failed 'gallery.tasks.purge_expired_trash' (ten-red) - boom (x)",
        "2026-12-07 06:00:06,000 INFO django-q: Processed 'duplicates.tasks.detect_pending' (detect duplicates)",
        f"2026-12-07 06:00:07,000 INFO django-q: Process-aa processing embed pending images '{EMBED_TASK}'",
    ]
    runs = runs_from_log(log, origin=origin)
    assert runs == [
        LogRun(func=DETECT_TASK, began=1.0, ended=4.0),
        LogRun(func=DETECT_TASK, began=2.5, ended=6.0),
        LogRun(func="gallery.tasks.purge_expired_trash", began=5.0, ended=5.25),
        LogRun(func=EMBED_TASK, began=7.0, ended=None),
    ]
    finished = [
        TaskRun(func=DETECT_TASK, queued=0.5, stopped=4.1, success=True, work=3),
        TaskRun(func=DETECT_TASK, queued=0.6, stopped=6.1, success=True, work=0),
    ]
    tally = task_tallies(finished, runs)[DETECT_TASK]
    assert (tally.runs, tally.with_work, tally.work, tally.ran_longest, tally.ran_total) == (2, 1, 3, 3.5, 6.5)
    assert tally.queued_to_done_longest == 5.5


def test_families_stay_about_a_hundred_copies_dense_whatever_the_upload_count():
    assert upload_plan(800) == upload_plan(800)
    assert (upload_plan(800).families, upload_plan(800).family_size) == (8, 95)
    for uploads in (40, 200, 333, 800, 1500):
        plan = upload_plan(uploads)
        assert plan.total == uploads
        assert plan.families == 8 or 80 <= plan.family_size <= 120 or plan.families == 1
        assert plan.distractors >= 0


def test_the_timeline_keeps_one_sample_per_step_and_the_last():
    samples = [_sample(t / 2) for t in range(41)]
    assert [sample.t for sample in timeline_rows(samples, every=5)] == [0, 5, 10, 15, 20]
    assert [sample.t for sample in timeline_rows(samples[:40], every=5)] == [0, 5, 10, 15, 19.5]


def test_the_table_says_whether_the_goal_was_met():
    figures = Figures(
        upload_seconds=120.0, last_upload=120.0, drained=136.0, caught_up=667.0, drained_after_last_upload=16.0,
        caught_up_after_last_upload=547.0, caught_up_after_drained=531.0, goal_met=False, embed_rate=5.9,
        detect_rate=1.2, index_requested=30.0, checks_run=1436, images_checked=799, checks_per_image=1436 / 799,
        pending_at_caught_up={EMBED_TASK: 428}, max_pending={EMBED_TASK: 430}, max_fetched=50,
    )  # fmt: skip
    table = result_table(figures, {})
    assert "531.0 s: MISSED" in table
    assert "1436 / 799 = 1.80 per image" in table
    assert "embed 428" in table
