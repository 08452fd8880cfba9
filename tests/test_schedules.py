from datetime import UTC, datetime, timedelta

import pytest

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import MAX_DURATION, parse_duration, parse_seconds
from f8a_jobs.core.schedules import (
    build_trigger,
    describe,
    first_run_time,
    next_fire_times,
    next_run_time,
    parse_schedule,
    parse_when,
    schedule_slots,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1 week", 604800),
        ("5:00:00", 18000),
        ("90 seconds", 90),
        ("1 hour", 3600),
        ("3600", 3600),
        (45, 45),
    ],
)
def test_durations_in_the_original_forms(text, seconds):
    assert parse_duration(text, "periodically") == seconds


@pytest.mark.parametrize(
    "bad", ["1 fortnight", "", "0 seconds", -5, True, None, [], "9999999999 weeks"]
)
def test_bad_durations_name_the_field(bad):
    with pytest.raises(InvalidInput) as caught:
        parse_duration(bad, "periodically")
    assert caught.value.field == "periodically"


@pytest.mark.parametrize(
    ("text", "days"),
    [("1 year", 365), ("2 Years", 730), ("1 month", 30), ("3 mos", 90), ("1 year, 2 months 3 days", 428)],
)
def test_durations_in_years_of_365_days_and_months_of_30(text, days):
    assert parse_duration(text, "periodically") == days * 86400
    assert parse_seconds(text, "timeout") == days * 86400


@pytest.mark.parametrize("bad", ["1 yearly", "years", "1 year soon", MAX_DURATION + 1, 1e300])
def test_long_durations_past_the_limit_or_unreadable_are_refused(bad):
    with pytest.raises(InvalidInput, match="periodically: "):
        parse_duration(bad, "periodically")


@pytest.mark.parametrize("bad", ["nan", "inf", MAX_DURATION + 1])
def test_fractional_durations_are_within_the_same_limit(bad):
    with pytest.raises(InvalidInput, match="retry_delay: "):
        parse_seconds(bad, "retry_delay", zero=True)


def test_when_accepts_iso_8601_with_and_without_offset():
    assert parse_when("2030-01-01T10:00:00+02:00", NOW) == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    assert parse_when("2030-01-01 10:00", NOW) == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def test_when_accepts_the_readmes_human_form_as_its_next_occurrence():
    assert parse_when("Sat Feb 20, 14:56", NOW) == datetime(2027, 2, 20, 14, 56, tzinfo=UTC)
    assert parse_when("Dec 24, 18:00", NOW) == datetime(2026, 12, 24, 18, 0, tzinfo=UTC)
    assert parse_when("Monday Feb 20 2034, 14:56", NOW) == datetime(2034, 2, 20, 14, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "date"),
    [("Mon Feb 20, 14:56", "2027-02-20"), ("Mon Feb 20 2027, 14:56", "2027-02-20"), ("thursday Dec 25", "2026-12-25")],
)
def test_when_refuses_a_weekday_its_date_does_not_fall_on_and_names_the_date(text, date):
    with pytest.raises(InvalidInput) as caught:
        parse_when(text, NOW)
    assert caught.value.field == "when"
    assert f"{date} (the date it reads as) is a" in caught.value.detail


def test_when_with_a_weekday_alone_means_that_weekday_next():
    assert parse_when("Wed 09:00", NOW).weekday() == 2


def test_one_shot_job_runs_at_when():
    spec = parse_schedule(when="2030-01-01T00:00:00Z", now=NOW)
    assert spec == {"version": 1, "type": "date", "run_date": "2030-01-01T00:00:00+00:00"}
    assert first_run_time(spec) == datetime(2030, 1, 1, tzinfo=UTC)
    assert describe(spec) == {
        "when": "2030-01-01T00:00:00+00:00",
        "periodically": None,
        "cron": None,
        "calendar": None,
        "timezone": None,
        "after": None,
        "manual": False,
    }


def test_periodic_job_runs_first_at_when_then_every_period():
    spec = parse_schedule(periodically="1 week", now=NOW)
    assert first_run_time(spec) == NOW
    trigger = build_trigger(spec)
    assert trigger.get_next_fire_time(NOW, NOW) == NOW + timedelta(weeks=1)
    assert describe(spec)["periodically"] == "1 week"


def test_cron_job_fires_on_its_crontab():
    spec = parse_schedule(cron="0 3 * * 1", now=NOW)
    assert first_run_time(spec) == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # next Monday
    assert describe(spec)["cron"] == "0 3 * * 1"


def test_resumed_one_shot_that_ran_does_not_run_again():
    spec = parse_schedule(now=NOW)
    assert next_run_time(spec, NOW + timedelta(hours=1), already_ran=True) is None
    assert next_run_time(spec, NOW + timedelta(hours=1), already_ran=False) == NOW


def test_resumed_periodic_job_continues_from_now_on():
    spec = parse_schedule(periodically="1 hour", now=NOW)
    assert next_run_time(spec, NOW + timedelta(minutes=90), already_ran=True) == NOW + timedelta(
        hours=2
    )


@pytest.mark.parametrize(
    ("words", "field"),
    [
        ({"when": "not a date"}, "when"),
        ({"when": "2001-01-01"}, "when"),
        ({"when": 12}, "when"),
        ({"periodically": "often"}, "periodically"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *", "periodically": "1 hour"}, "cron"),
    ],
)
def test_bad_schedules_name_the_field(words, field):
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(now=NOW, **words)
    assert caught.value.field == field


def test_stored_spec_of_unknown_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        build_trigger({"version": 99, "type": "date", "run_date": NOW.isoformat()})


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "Mon Tue Wed Thu Fri Sat Sun"),
        ("1", "Mon"),
        ("0", "Sun"),
        ("7", "Sun"),
        ("1-5", "Mon Tue Wed Thu Fri"),
        ("*/2", "Tue Thu Sat Sun"),
        ("1-5/2", "Mon Wed Fri"),
        ("sat,sun", "Sat Sun"),
        ("mon-wed", "Mon Tue Wed"),
    ],
)
def test_crontab_weekdays_keep_crontab_numbering(field, names):
    from f8a_jobs.core.calendars import DAY_NAMES, parse_crontab

    weekdays = parse_crontab(f"0 0 * * {field}").weekdays
    assert " ".join(DAY_NAMES[day] for day in sorted(weekdays)) == names


@pytest.mark.parametrize("cron", ["0 0 * * 8", "0 0 * * 5-1", "0 0 * * x", "0 0 * * 1/0"])
def test_bad_crontab_weekdays_are_refused(cron):
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(cron=cron, now=NOW)
    assert caught.value.field == "cron"


def test_a_manual_job_runs_only_when_started():
    spec = parse_schedule(manual=True, now=NOW)
    assert spec == {"version": 1, "type": "manual"}
    assert first_run_time(spec) is None and describe(spec)["manual"] is True
    assert next_fire_times(spec, NOW, 3) == [] and list(schedule_slots(spec, NOW, NOW + timedelta(days=9))) == []
    with pytest.raises(InvalidInput, match="manual: a job run only when started has no other"):
        parse_schedule(manual=True, periodically="1 hour", now=NOW)
    with pytest.raises(InvalidInput, match="manual: expected true or false"):
        parse_schedule(manual="yes", now=NOW)
    assert parse_schedule(manual=False, periodically="1 hour", now=NOW)["type"] == "interval"
