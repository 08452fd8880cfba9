"""Calendar and crontab schedules in time zones: Datatailr's example, DST both ways in Paris and
New York, Vixie cron's day rule, and a differential test against cronsim."""

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from f8a_jobs.core.calendars import parse_calendar, parse_crontab
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.schedules import next_fire_times, parse_schedule

PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")


def local(instants, zone):
    return [instant.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") for instant in instants]


def test_the_datatailr_example_fires_exactly_then_across_dst():
    calendar = parse_calendar({
        "at_minutes": [30], "at_hours": [10, 16], "weekdays": ["Mon", "Wed"],
        "first_last": {"weekday": "Fri", "which": "Last"}, "timezone": "Europe/Paris",
    })
    fires = calendar.upcoming(datetime(2027, 3, 19, tzinfo=UTC), 12)
    assert local(fires, PARIS) == [
        "Mon 2027-03-22 10:30 CET", "Mon 2027-03-22 16:30 CET",
        "Wed 2027-03-24 10:30 CET", "Wed 2027-03-24 16:30 CET",
        "Fri 2027-03-26 10:30 CET", "Fri 2027-03-26 16:30 CET",  # the last Friday of March
        "Mon 2027-03-29 10:30 CEST", "Mon 2027-03-29 16:30 CEST",  # after the clocks went forward
        "Wed 2027-03-31 10:30 CEST", "Wed 2027-03-31 16:30 CEST",
        "Mon 2027-04-05 10:30 CEST", "Mon 2027-04-05 16:30 CEST",  # Fri Apr 2 is not the last
    ]
    assert fires[0] == datetime(2027, 3, 22, 9, 30, tzinfo=UTC)
    assert fires[6] == datetime(2027, 3, 29, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc"),
    [
        ("Europe/Paris", datetime(2027, 3, 28), datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),  # 03:00 CEST
        ("America/New_York", datetime(2027, 3, 14), datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),  # 03:00 EDT
    ],
)
def test_a_time_skipped_by_spring_forward_fires_once_after_the_gap(zone, day, expected_utc):
    calendar = parse_calendar({"at_hours": [2], "every_minute": 15, "timezone": zone})
    start = (day - timedelta(days=1)).replace(tzinfo=UTC)
    fires = [f for f in calendar.upcoming(start, 12) if f.astimezone(ZoneInfo(zone)).date() == day.date()]
    assert fires == [expected_utc]  # 02:00, 02:15, 02:30, 02:45 do not exist: one fire, not four


@pytest.mark.parametrize(
    ("zone", "day", "hour", "expected_utc"),
    [
        ("Europe/Paris", datetime(2027, 10, 31), 2, [datetime(2027, 10, 31, 0, 0, tzinfo=UTC), datetime(2027, 10, 31, 0, 30, tzinfo=UTC)]),
        ("America/New_York", datetime(2027, 11, 7), 1, [datetime(2027, 11, 7, 5, 0, tzinfo=UTC), datetime(2027, 11, 7, 5, 30, tzinfo=UTC)]),
    ],
)
def test_a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence(zone, day, hour, expected_utc):
    calendar = parse_calendar({"at_hours": [hour], "every_minute": 30, "timezone": zone})
    start = (day - timedelta(days=1)).replace(tzinfo=UTC)
    fires = [f for f in calendar.upcoming(start, 6) if f.astimezone(ZoneInfo(zone)).date() == day.date()]
    assert fires == expected_utc  # the hour happens twice; each slot fires once, the first time


def test_daily_times_keep_their_local_hour_and_nothing_is_lost_or_doubled_over_a_year():
    calendar = parse_calendar({"at_hours": [2], "at_minutes": [30], "timezone": "America/New_York"})
    fires = calendar.upcoming(datetime(2027, 1, 1, tzinfo=UTC), 365)
    days = [f.astimezone(NEW_YORK).date() for f in fires]
    assert len(set(days)) == 365 and days == sorted(days)  # one fire a day, every day
    assert all(f.astimezone(NEW_YORK).strftime("%H:%M") in ("02:30", "03:00") for f in fires)


def test_every_steps_from_the_first_value_as_cron_does():
    calendar = parse_calendar({"every_minute": 15, "every_hour": 6, "every_month": 3})
    assert calendar.minutes == (0, 15, 30, 45) and calendar.hours == (0, 6, 12, 18)
    assert sorted(calendar.months) == [1, 4, 7, 10]


def test_cron_follows_vixie_day_rule():
    either = parse_crontab("0 0 1 * 1").upcoming(datetime(2027, 1, 1, tzinfo=UTC), 3)
    assert [f.day for f in either] == [4, 11, 18]  # Mondays, and (later) the 1st
    both = parse_crontab("0 0 */2 * 1").upcoming(datetime(2027, 1, 1, tzinfo=UTC), 3)
    assert [(f.day, f.weekday()) for f in both] == [(11, 0), (25, 0), (1, 0)]  # odd days that are Mondays


def test_cron_in_a_time_zone_fires_at_local_time():
    spec = parse_schedule(cron="0 9 * * *", timezone="America/New_York", now=datetime(2027, 3, 12, tzinfo=UTC))
    fires = next_fire_times(spec, datetime(2027, 3, 12, tzinfo=UTC), 3)
    assert [f.hour for f in fires] == [14, 14, 13]  # 09:00 EST, EST, then EDT


def random_field(rng, low, high, names=()):
    choice = rng.random()
    if choice < 0.3:
        return "*"
    if choice < 0.45:
        return f"*/{rng.randint(1, high - low + 1)}"
    if choice < 0.6:
        a = rng.randint(low, high - 1)
        b = rng.randint(a + 1, high)  # not a-a/n: cronsim 2.8 reads "5-5/1" as 5 to the end
        return f"{a}-{b}" + (f"/{rng.randint(1, 5)}" if rng.random() < 0.3 else "")
    values = sorted(rng.sample(range(low, high + 1), rng.randint(1, 3)))
    return ",".join(names[v - low] if names and rng.random() < 0.3 else str(v) for v in values)


def test_crontabs_agree_with_cronsim_on_many_random_expressions():
    rng = random.Random(20261123)
    months = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    days = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
    checked = 0
    while checked < 400:
        expr = " ".join([
            random_field(rng, 0, 59), random_field(rng, 0, 23), random_field(rng, 1, 31),
            random_field(rng, 1, 12, months), random_field(rng, 0, 6, days),
        ])
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 60 * 24 * 900))
        try:
            ours = parse_crontab(expr)
        except InvalidInput:  # never fires (Feb 30): cronsim loops looking, so we skip it
            continue
        theirs = CronSim(expr, start)
        assert ours.upcoming(start, 8) == [next(theirs) for _ in range(8)], expr
        checked += 1


@pytest.mark.parametrize(
    ("words", "field"),
    [
        ({"calendar": {"weekdays": ["Funday"]}}, "calendar.weekdays"),
        ({"calendar": {"first_last": {"weekday": "Fri", "which": "Sixth"}}}, "calendar.first_last.which"),
        ({"calendar": {"timezone": "Mars/Olympus"}}, "calendar.timezone"),
        ({"calendar": {"day_of_month": [30], "in_months": [2]}}, "calendar"),
        ({"calendar": {"every_minute": 0}}, "calendar.every_minute"),
        ({"calendar": {"at_minutes": [60]}}, "calendar.at_minutes"),
        ({"calendar": {"every_minute": 5, "at_minutes": [1]}}, "calendar.every_minute"),
        ({"calendar": {"on": "Mon"}}, "calendar.on"),
        ({"calendar": {"rundate_offset": "x"}}, "calendar.rundate_offset"),
        ({"calendar": "daily"}, "calendar"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "0 0 * * *", "timezone": "Nowhere"}, "timezone"),
        ({"periodically": "1 hour", "timezone": "UTC"}, "timezone"),
        ({"cron": "0 0 * * *", "calendar": {"at_hours": [1]}}, "calendar"),
        ({"calendar": {"timezone": "Europe/Paris"}, "timezone": "UTC"}, "timezone"),
    ],
)
def test_bad_calendars_name_the_field(words, field):
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(now=datetime(2027, 1, 1, tzinfo=UTC), **words)
    assert caught.value.field == field


def test_unset_fields_coarser_than_those_given_mean_every_and_finer_ones_zero():
    assert parse_calendar({"every_minute": 15}).hours == tuple(range(24))
    at_ten = parse_calendar({"at_hours": [10]})
    assert at_ten.minutes == (0,) and len(at_ten.months) == 12 and at_ten.weekdays is None
    assert parse_calendar({"weekdays": ["Mon"]}).hours == (0,)


def test_a_yaml_job_takes_the_schedule_fields_as_the_api_does():
    import yaml

    from f8a_jobs.services.jobs import job_json, parse_job

    text = """
job_id: paris-report
handler: Noop
calendar:
  at_minutes: [30]
  at_hours: [10, 16]
  weekdays: [Mon, Wed]
  first_last: {weekday: Fri, which: Last}
  timezone: Europe/Paris
  rundate_offset: -1
overlap: buffer_one
misfire_policy: run_all
tries: 3
retry_delay: 30 seconds
retry_backoff: 2
timeout: 10 minutes
pause_on_failure: true
"""
    job = parse_job(yaml.safe_load(text), now=datetime(2027, 3, 19, tzinfo=UTC))
    shown = job_json({**job.row(datetime(2027, 3, 19, tzinfo=UTC)), "revision": 1, "last_run": None})
    assert shown["timezone"] == "Europe/Paris" and shown["overlap"] == "buffer_one"
    assert (shown["tries"], shown["retry_delay"], shown["timeout"]) == (3, 30.0, 600.0)
    assert shown["next_run_time"] == "2027-03-22T09:30:00+00:00"  # Monday 10:30 in Paris
