from django.conf import settings

from nps_platform.celery import app


def test_it_schedules_only_tasks_a_worker_knows():
    app.loader.import_default_modules()
    unknown = [
        entry["task"]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] not in app.tasks
    ]
    assert unknown == []
    assert len(settings.CELERY_BEAT_SCHEDULE) >= 7
