"""SQLite writers of one process take turns at the write lock: a second writer waits for the
first's commit or rollback (handed over, not retried on SQLite's sleep schedule)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from careledger.store.db import Database
from careledger.store.migrate import upgrade
from careledger.store.repositories import GatewayState

pytestmark = pytest.mark.integration


@pytest.fixture
def db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    upgrade(url)
    return Database(url)


def test_a_second_writer_waits_for_the_first_to_commit(db: Database) -> None:
    first_wrote, let_first_commit, order = threading.Event(), threading.Event(), []

    def first() -> None:
        with db.session() as s:
            GatewayState(s).write("first", "1")  # takes the turn
            first_wrote.set()
            let_first_commit.wait(10)
            order.append("first commits")

    def second() -> None:
        first_wrote.wait(10)
        with db.session() as s:
            GatewayState(s).write("second", "2")
            order.append("second wrote")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_wrote.wait(10)
    let_first_commit.set()
    for t in threads:
        t.join(20)
    assert order == ["first commits", "second wrote"]
    with db.session() as s:
        assert (GatewayState(s).read("first"), GatewayState(s).read("second")) == ("1", "2")
    db.dispose()


def test_a_rolled_back_writer_hands_the_turn_on(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        GatewayState(s).write("gone", "x")
        raise RuntimeError("the use case fails after writing")
    done = threading.Event()

    def other() -> None:
        with db.session() as s:
            GatewayState(s).write("after", "y")
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(20)
    assert done.is_set()
    with db.session() as s:
        assert GatewayState(s).read("gone") is None and GatewayState(s).read("after") == "y"
        assert s.execute(text("SELECT count(*) FROM gateway_state")).scalar() == 1
    db.dispose()
