"""``Router.from_celery``: Celery's ``task_routes`` as Celery's documentation writes them,
matched with Celery's rules (celery.app.routes.MapRoute), issue 14."""

from __future__ import annotations

import re

import pytest

from bananas import Client, Router
from bananas.errors import RouteTableError

# "Routing Tasks" of Celery's user guide, the automatic-routing example.
CELERY_DOCS_ROUTES = {
    "celery.ping": "default",
    "mytasks.add": "cpu-bound",
    "feed.tasks.*": "feeds",
    re.compile(r"(image|video)\.tasks\..*"): "media",
    "video.encode": {"queue": "video", "exchange": "media", "routing_key": "media.video.encode"},
}

# The same guide's ordered form: a tuple holding a list of (pattern, route) pairs.
CELERY_DOCS_ORDERED = (
    [
        ("feed.tasks.*", {"queue": "feeds"}),
        ("web.tasks.*", {"queue": "web"}),
        (re.compile(r"(video|image)\.tasks\..*"), {"queue": "media"}),
    ],
)


def queue_of(router: Router, name: str) -> str | None:
    found = router.resolve(name)
    return None if found is None else found.routing_key


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        ("celery.ping", "default"),
        ("mytasks.add", "cpu-bound"),
        ("feed.tasks.import_feed", "feeds"),
        ("image.tasks.resize", "media"),
        ("video.tasks.encode", "media"),
        ("video.encode", "video"),
        # Celery's glob: '*' is one or more characters, anchored at the start only.
        ("feed.tasks.", None),
        ("xfeed.tasks.a", None),
        # The regex is applied with re.match: anchored at the start, not at the end.
        ("image.tasks.resize.big", "media"),
        ("my.image.tasks.resize", None),
        ("mytasks.add.extra", None),
    ],
)
def test_celery_documentation_table(name: str, queue: str | None) -> None:
    assert queue_of(Router.from_celery(CELERY_DOCS_ROUTES), name) == queue


def test_ordered_form_and_list_of_dicts() -> None:
    router = Router.from_celery(CELERY_DOCS_ORDERED)
    assert queue_of(router, "web.tasks.login") == "web"
    assert queue_of(router, "video.tasks.cut") == "media"
    # A list of dicts: asked in order, the first dict that routes the name wins.
    router = Router.from_celery([{"a.*": "first"}, {"a.b": "second", "c": {"queue": "third"}}])
    assert queue_of(router, "a.b") == "first"
    assert queue_of(router, "c") == "third"


def test_exact_names_win_over_patterns_written_before_them() -> None:
    router = Router.from_celery({"feed.tasks.*": "feeds", "feed.tasks.import_feed": "imports"})
    assert queue_of(router, "feed.tasks.import_feed") == "imports"
    assert queue_of(router, "feed.tasks.other") == "feeds"


def test_regex_is_anchored_at_the_start_only() -> None:
    # The case: Celery sends mail_welcome to 'mail'; a full match would not.
    router = Router.from_celery({re.compile(r"^mail_"): {"queue": "mail"}, re.compile(r"welcome"): "w"})
    assert queue_of(router, "mail_welcome") == "mail"
    assert queue_of(router, "send_welcome") is None


def test_question_marks_and_brackets_are_plain_characters() -> None:
    router = Router.from_celery({"tasks.a?b": "q", "tasks.[x]": "r"})
    assert queue_of(router, "tasks.a?b") == "q"
    assert queue_of(router, "tasks.aXb") is None
    assert queue_of(router, "tasks.[x]") == "r"


def test_client_uses_the_celery_table(redis_url: str) -> None:
    import redis

    with Client(redis_url, router=Router.from_celery(CELERY_DOCS_ROUTES)) as client:
        client.submit_job("feed.tasks.import_feed", None)
        client.submit_job("video.encode", None)
    r = redis.Redis.from_url(redis_url)
    assert r.llen("bananas:route:feeds:queue:normal") == 1
    assert r.llen("bananas:route:video:queue:normal") == 1
    r.close()


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ("myapp.routers.route_task", "must be a dict or a list"),
        (["myapp.routers.route_task"], r"task_routes\[0\] is a router name"),
        ({"a": {"exchange": "x"}}, "has no 'queue'"),
        ({"a": 5}, "must be"),
        ({"a": "has.dot"}, "invalid routing key"),
        ({5: "q"}, "task name, a glob or a compiled regex"),
    ],
)
def test_bad_tables_are_refused_with_one_clear_line(table: object, match: str) -> None:
    with pytest.raises(RouteTableError, match=match) as info:
        Router.from_celery(table)
    assert "\n" not in str(info.value)


def test_real_project_config() -> None:
    """tuenut/celeryDemo's celeryconfig.py, as docs/COMPARISON.md migrates it."""
    task_routes = {
        "tasks.datahandle.*": "datahandle",
        "tasks.datasource.*": "datasource",
        "tasks.notification.*": "notification",
    }
    router = Router.from_celery(task_routes)
    assert queue_of(router, "tasks.datasource.fetch") == "datasource"
    assert queue_of(router, "tasks.notification.send.email") == "notification"
    assert queue_of(router, "tasks.other") is None
