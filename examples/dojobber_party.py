"""DoJobber's party, written as DoJobber's users write it, submitted to f8a-jobs.

Every job is idempotent: its ``Check`` looks at the house (a folder, the ``house`` argument),
its ``Run`` changes it. The first run does the work (the dishwasher needs two tries); a second
run only checks. ``SendInvite`` jobs are made at run time, one per friend, as DoJobber's
README makes them. Submit and run it (the service must allow this module:
``F8A_JOBS_HANDLER_MODULES=examples.dojobber_party``)::

    python -m examples.dojobber_party /tmp/house
"""

from __future__ import annotations

import sys
from pathlib import Path

from f8a_jobs.client import Client
from f8a_jobs.client.dojobber import DummyJob, Job, submit_dojobber


def _note(house: str, name: str, text: str = "") -> None:
    with (Path(house) / name).open("a") as file:
        file.write(text + "\n")


class SendInvite(Job):
    EMAIL = None
    NAME = None

    def Check(self, *args, **kwargs):
        assert (Path(kwargs["house"]) / f"invited-{self.EMAIL}").exists(), f"{self.NAME}: not yet"

    def Run(self, *args, **kwargs):
        _note(kwargs["house"], f"invited-{self.EMAIL}", self.NAME)


class InviteFriends(DummyJob):
    """Job that will become dynamically dependent on other Jobs."""

    DEPS = []


def invite_friends(people):
    """Add Invite Jobs for these people."""
    for person in people:
        job = type('Invite {}'.format(person['name']), (SendInvite,), {})
        job.EMAIL = person['email']
        job.NAME = person['name']
        InviteFriends.DEPS.append(job)


class FriendsArrive(Job):
    DEPS = (InviteFriends,)

    def Check(self, *args, **kwargs):
        house = Path(kwargs["house"])
        assert (house / "arrived").exists(), "nobody is here yet"
        guests = sorted(p.read_text().strip() for p in house.glob("invited-*"))
        self.global_storage["guests"] = guests

    def Run(self, *args, **kwargs):
        _note(kwargs["house"], "arrived")


class PopcornBowl(Job):
    TRIES = 3
    RETRY_DELAY = 0.2

    def Check(self, *args, **kwargs):
        assert (Path(kwargs["house"]) / "bowl").exists(), "Dishwasher cycle not done yet."

    def Run(self, *args, **kwargs):
        _note(kwargs["house"], "dishwasher", "cycle")
        if len((Path(kwargs["house"]) / "dishwasher").read_text().split()) >= 2:
            _note(kwargs["house"], "bowl")

    def Cleanup(self):
        _note(self.kwargs["house"], "cleanups", "PopcornBowl")  # set_args' kwargs


class Popcorn(Job):
    DEPS = (PopcornBowl,)

    def Check(self, *args, **kwargs):
        self.storage["bag"] = Path(kwargs["house"]) / "popcorn"
        assert self.storage["bag"].exists(), "Still popping..."

    def Run(self, *args, **kwargs):
        self.storage["bag"].write_text("popped\n")  # the Check's storage, in the same try

    def Cleanup(self):
        _note(self.kwargs["house"], "cleanups", "Popcorn")


class TurnOnTV(Job):
    def Check(self, *args, **kwargs):
        assert (Path(kwargs["house"]) / "tv-on").exists(), "Remote batteries are dead."

    def Run(self, *args, **kwargs):
        _note(kwargs["house"], "tv-on")


class WatchMovie(Job):
    DEPS = (FriendsArrive, Popcorn, TurnOnTV)

    def Check(self, *args, **kwargs):
        watching = Path(kwargs["house"]) / "watching"
        assert watching.exists(), "not watching yet"
        self.global_storage["movie"] = kwargs["movie"]

    def Run(self, *args, **kwargs):
        guests = ", ".join(self.global_storage["guests"])
        _note(kwargs["house"], "watching", f"{kwargs['movie']} with {guests}")


def submit(client: Client, house: str, job_id: str = "party") -> dict:
    """The party as a workflow job that runs only when started."""
    invite_friends([
        {'name': 'Wendell Bagg', 'email': 'bagg@example.com'},
        {'name': 'Lawyer Cat', 'email': 'lawyercat@example.com'},
    ])
    return submit_dojobber(
        client, WatchMovie, job_id=job_id, default_tries=2, kwargs={"house": house, "movie": "Zardoz"}
    )


if __name__ == "__main__":
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    with Client() as api:
        submit(api, sys.argv[1])
        for _ in range(2):
            run = api.wait(api.run_now("party"), timeout=120)
            print(run["status"], {task["name"]: task["state"] for task in run["tasks"]})
