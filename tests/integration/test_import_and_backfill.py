"""Importing holds and backfilling their metadata (docs/reference/importing-holds.md), through the scripts'
own ``main`` against moto and the real API function, and once as commands against a local moto server."""

from __future__ import annotations

import json
import runpy
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.holds_table import hold_item
from booking_durability.reservations import catalog
from booking_durability.reservations.holds import Hold, SelectionSnapshot, SnapshotTable
from booking_durability.reservations.ports import StoredHold
from booking_durability.reservations.venues import VenueConfig
from booking_durability.times import utc_now
from operations.hold_migration import HoldMigrationTable
from operations.migration import StepResult, carry_out, plan_backfill
from tests.builders import CONTRACT_POLICY_HASH, venue_config
from tests.integration.conftest import REGION, ROOT, Api, MotoServer, Resources
from tests.integration.test_api_reservations import at, hold_request, problem, start

SCRIPTS = ("import_holds", "backfill_hold_metadata")
PLANTED = "ana.guest+pii@example.test"
#: A guest's name and phone number as a careless export could carry them.
NAME, PHONE = "AnaPerezSecretname", "34600111222"

STARTS_AT = start()  # three days ahead, 20:00 UTC
# 85 minutes: with the venue's 10-minute buffer, an imported hold owns its table until 21:35.
ENDS_AT = STARTS_AT + timedelta(minutes=85)
IN_THE_BUFFER = STARTS_AT + timedelta(minutes=90)  # 21:30, on the venue's 15-minute slots
AFTER_THE_BUFFER = STARTS_AT + timedelta(minutes=105)  # 21:45


@dataclass(frozen=True)
class Ran:
    code: int
    out: list[str]
    err: str


@dataclass
class Script:
    """A script's ``main``, run in-process: its exit status and what it printed."""

    main: Callable[[list[str]], int]
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> Ran:
        self.capsys.readouterr()  # the API function's own lines (logs, metrics) are not the script's
        code = self.main(list(args))
        captured = self.capsys.readouterr()
        return Ran(code, captured.out.splitlines(), captured.err)


@pytest.fixture(scope="module")
def scripts() -> dict[str, dict[str, Any]]:
    return {name: runpy.run_path(str(ROOT / "scripts" / f"{name}.py")) for name in SCRIPTS}


@pytest.fixture
def import_holds(scripts: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> Script:
    return Script(scripts["import_holds"]["main"], capsys)


@pytest.fixture
def backfill(scripts: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> Script:
    return Script(scripts["backfill_hold_metadata"]["main"], capsys)


@pytest.fixture
def venue(api: Api) -> None:
    assert api.call("PUT", "/v1/venues/casa", venue_config()).status == 200


def exported(hold_id: str, table_ids: list[str], party_size: object = 2, **more: object) -> dict[str, Any]:
    """A hold as the booking app exports it: the required fields, and ``more``."""
    return {
        "hold_id": hold_id,
        "venue_id": "casa",
        "party_size": party_size,
        "starts_at": at(STARTS_AT),
        "ends_at": at(ENDS_AT),
        "expires_at": at(datetime.now(UTC) + timedelta(hours=1)),
        "table_ids": table_ids,
        **more,
    }


def jsonl(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def on_moto(resources: Resources, *more: str) -> tuple[str, ...]:
    """The scripts' options for the test's table (moto answers their AWS clients in-process)."""
    return ("--aws", "--table", resources.reservations_table, *more)


def table_items(resources: Resources) -> list[dict[str, Any]]:
    items = resources.dynamodb.scan(TableName=resources.reservations_table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def store_of(resources: Resources) -> HoldMigrationTable:
    return HoldMigrationTable(DynamoTable(resources.reservations_table, resources.dynamodb))


def confirm(api: Api, hold_id: str, booking_id: str = "bk_1") -> Any:
    return api.call("POST", f"/v1/holds/{hold_id}/confirm", {"booking_id": booking_id})


def status_of(api: Api, hold_id: str) -> str:
    return str(api.call("GET", f"/v1/holds/{hold_id}").body["status"])


# -- import -----------------------------------------------------------------------------------


def test_imported_holds_own_their_tables_over_the_current_buffer_and_a_rerun_skips_them(
    api: Api,
    resources: Resources,
    venue: None,
    import_holds: Script,
    tmp_path: Path,
) -> None:
    # Given an export of two holds lacking metadata
    export = jsonl(
        tmp_path / "holds.jsonl", exported("hld_a", ["T1"]), exported("hld_b", ["T3"], party_size=4)
    )
    # When it is imported
    assert import_holds(str(export), *on_moto(resources)) == Ran(0, ["imported 2, skipped 0, refused 0"], "")
    # Then each reads back as given, held
    hold = api.call("GET", "/v1/holds/hld_a").body
    assert (hold["status"], hold["table_ids"], hold["policy_hash"], hold["selection_snapshot"]) == (
        "held",
        ["T1"],
        None,
        None,
    )
    # And owns its table until its end plus the venue's buffer: a new hold meanwhile gets another
    assert api.call("POST", "/v1/holds", hold_request(2, IN_THE_BUFFER)).body["table_ids"] == ["T2"]
    assert api.call("POST", "/v1/holds", hold_request(2, AFTER_THE_BUFFER)).body["table_ids"] == ["T1"]
    # And a party that only T3 seats finds none at that time
    problem(api.call("POST", "/v1/holds", hold_request(4, STARTS_AT, zone="terraza")), 409, "NO_AVAILABILITY")

    # When the same file is imported again, nothing is written
    before = table_items(resources)
    assert import_holds(str(export), *on_moto(resources)) == Ran(0, ["imported 0, skipped 2, refused 0"], "")
    assert table_items(resources) == before


def test_a_mixed_export_imports_skips_and_refuses_line_by_line(
    api: Api,
    resources: Resources,
    venue: None,
    import_holds: Script,
    tmp_path: Path,
) -> None:
    # Given an export with a good line, its duplicate, a hold on a table already taken, and bad lines
    good = exported("hld_good", ["T1"], status="held")
    export = jsonl(
        tmp_path / "holds.jsonl",
        good,  # 1
        good,  # 2: the same hold again
        exported("hld_rival", ["T1"]),  # 3: T1 is hld_good's meanwhile
        '{"hold_id": "hld_broken", ' + PLANTED,  # 4: not JSON
        exported("hld_done", ["T2"], status="confirmed"),  # 5
        {k: v for k, v in exported("hld_short", ["T2"]).items() if k != "expires_at"},  # 6
        exported("hld_typed", ["T2"], party_size="2"),  # 7
        exported("hld_extra", ["T2"], **{PLANTED: "x"}),  # 8
        exported("hld_nowhere", ["T2"], venue_id="nowhere"),  # 9
        exported("hld_ghost", ["T9"]),  # 10: no such table
        exported("hld_stale", ["T2"], expires_at=at(datetime.now(UTC) - timedelta(seconds=1))),  # 11
        exported("hld_good", ["T2"]),  # 12: the id of another hold
        exported("hld_named", ["T2"], guest={"name": NAME, "phone": PHONE}),  # 13
        exported("hld_phone", ["T2"], party_size=PHONE),  # 14: a phone number where a size belongs
    )
    # When it is imported
    ran = import_holds(str(export), *on_moto(resources))
    # Then each refusal names its line and reason (and a valid id), never the line's content
    assert ran.code == 1
    assert ran.out == [
        "line 3: refused tables_taken hold hld_rival",
        "line 4: refused invalid_json",
        "line 5: refused status_not_held field status hold hld_done",
        "line 6: refused missing_field field expires_at hold hld_short",
        "line 7: refused invalid_field field party_size hold hld_typed",
        "line 8: refused unknown_field hold hld_extra",
        "line 9: refused venue_unknown hold hld_nowhere",
        "line 10: refused unknown_table hold hld_ghost",
        "line 11: refused expired hold hld_stale",
        "line 12: refused hold_id_taken hold hld_good",
        "line 13: refused unknown_field hold hld_named",
        "line 14: refused invalid_field field party_size hold hld_phone",
        "imported 1, skipped 1, refused 12",
    ]
    for planted in (PLANTED, NAME, PHONE):
        assert planted not in "".join(ran.out) + ran.err
    # And only the good hold was stored
    holds = [i["pk"]["S"] for i in table_items(resources) if i["pk"]["S"].startswith("HOLD#")]
    assert holds == ["HOLD#hld_good"]
    assert api.call("GET", "/v1/holds/hld_good").body["table_ids"] == ["T1"]


@pytest.mark.parametrize("make", ["missing", "latin-1", "directory"])
def test_unreadable_input_is_exit_2_and_writes_nothing(
    resources: Resources,
    venue: None,
    import_holds: Script,
    tmp_path: Path,
    make: str,
) -> None:
    path = tmp_path / "holds.jsonl"
    if make == "latin-1":
        path.write_bytes(
            json.dumps(exported("hld_a", ["T1"], zone="caf\u00e9"), ensure_ascii=False).encode("latin-1")
        )
    elif make == "directory":
        path.mkdir()
    before = table_items(resources)
    ran = import_holds(str(path), *on_moto(resources))
    assert (ran.code, ran.out) == (2, [])
    assert "cannot read" in ran.err
    assert table_items(resources) == before


def test_a_hold_its_tables_cannot_seat_is_refused_with_its_own_reason(
    api: Api, resources: Resources, venue: None, import_holds: Script, tmp_path: Path
) -> None:
    # Given an export with a party of 9 on a 2-seat table, and parties T3 (3 to 6) cannot seat
    export = jsonl(
        tmp_path / "holds.jsonl",
        exported("hld_nine", ["T1"], party_size=9),
        exported("hld_two", ["T3"], party_size=2),
        exported("hld_eleven", ["T2", "T3"], party_size=11, policy_version=1),
        exported("hld_fits", ["T3"], party_size=4),
    )
    # When it is imported, Then each unfit line is refused for that, and only the fit one stored
    assert import_holds(str(export), *on_moto(resources)) == Ran(
        1,
        [
            "line 1: refused party_does_not_fit hold hld_nine",
            "line 2: refused party_does_not_fit hold hld_two",
            "line 3: refused party_does_not_fit hold hld_eleven",
            "imported 1, skipped 0, refused 3",
        ],
        "",
    )
    holds = [i["pk"]["S"] for i in table_items(resources) if i["pk"]["S"].startswith("HOLD#")]
    assert holds == ["HOLD#hld_fits"]
    # And T1 stays free for a party it seats
    assert api.call("POST", "/v1/holds", hold_request(2, STARTS_AT)).body["table_ids"] == ["T1"]


def test_an_imported_hold_lacking_metadata_cannot_be_confirmed(
    api: Api, resources: Resources, venue: None, import_holds: Script, tmp_path: Path
) -> None:
    export = jsonl(tmp_path / "holds.jsonl", exported("hld_a", ["T1"]))
    assert import_holds(str(export), *on_moto(resources)).code == 0
    body = problem(confirm(api, "hld_a"), 422, "HOLD_METADATA_INCOMPLETE")
    assert body["missing"] == ["policy_hash", "selection_snapshot"]
    assert status_of(api, "hld_a") == "held"


def test_the_table_is_found_from_the_stack_output_in_aws(
    resources: Resources, venue: None, import_holds: Script, tmp_path: Path
) -> None:
    # Given a deployed stack whose output names the table
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ReservationsTableName": {"Value": resources.reservations_table}},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="BookingDurability-dev", TemplateBody=json.dumps(template)
    )
    export = jsonl(tmp_path / "holds.jsonl", exported("hld_a", ["T1"]))
    assert import_holds(str(export), "--aws") == Ran(0, ["imported 1, skipped 0, refused 0"], "")
    # A stack that does not exist, or a table that does not, stops the run before any line is
    # read: one line says why, no summary follows
    ran = import_holds(str(export), "--aws", "--stack", "BookingDurability-nope")
    assert (ran.code, ran.out) == (2, [])
    assert ran.err.splitlines() == [
        "nothing imported: stack BookingDurability-nope could not be read (ValidationError)"
    ]
    ran = import_holds(str(export), "--aws", "--table", "nope")
    assert (ran.code, ran.out, ran.err) == (2, [], "nothing imported: no table nope in AWS\n")


# -- backfill ---------------------------------------------------------------------------------


@pytest.fixture
def imported(api: Api, resources: Resources, venue: None, import_holds: Script, tmp_path: Path) -> None:
    """Three imported holds lacking metadata, and one complete hold made by the API."""
    export = jsonl(
        tmp_path / "imported.jsonl",
        exported("hld_by_version", ["T1"], policy_version=1),
        exported("hld_by_hash", ["T2"], party_size=3, policy_hash=CONTRACT_POLICY_HASH),
        exported("hld_unknown", ["T3"], party_size=4),
    )
    assert import_holds(str(export), *on_moto(resources)).code == 0
    assert api.call("POST", "/v1/holds", hold_request(2, STARTS_AT + timedelta(hours=3))).status == 201


PLAN = [
    "hld_by_hash: fill policy_version,selection_snapshot",
    "hld_by_version: fill policy_hash,selection_snapshot",
    "hld_unknown: release: no policy version",
]


def test_a_dry_run_prints_the_plan_and_writes_nothing(
    resources: Resources, imported: None, backfill: Script
) -> None:
    before = table_items(resources)
    ran = backfill(*on_moto(resources))
    assert ran.code == 0
    *steps, summary = ran.out
    assert sorted(steps) == PLAN
    assert summary == "dry run: would fill 2, release 1, leave 0; nothing written (--apply writes)"
    assert ran.err == ""  # no progress bar off a terminal
    assert table_items(resources) == before


def test_apply_fills_what_it_can_releases_the_rest_and_a_rerun_finds_nothing(
    api: Api, resources: Resources, imported: None, backfill: Script
) -> None:
    # When the backfill is applied, a page of two items at a time
    ran = backfill(*on_moto(resources, "--apply", "--page-size", "2"))
    assert (ran.code, ran.err) == (0, "")
    *steps, summary = ran.out
    assert sorted(steps) == [
        f"{PLAN[0]} -> filled",
        f"{PLAN[1]} -> filled",
        f"{PLAN[2]} -> released",
    ]
    assert summary == "filled 2, released 1, left 0, skipped 0"
    # Then the filled holds carry their version's metadata, derived from the hold and the version
    hold = api.call("GET", "/v1/holds/hld_by_hash").body
    expires_at = datetime.fromisoformat(hold["expires_at"])
    assert (hold["policy_hash"], hold["policy_version"]) == (CONTRACT_POLICY_HASH, 1)
    assert hold["selection_snapshot"] == {
        "party_size": 3,
        "starts_at": at(STARTS_AT),
        "ends_at": at(ENDS_AT),
        "zone": None,
        "tables": [{"id": "T2", "capacity": 4}],
        "quoted_at": at(expires_at - timedelta(seconds=600)),
    }
    # And they confirm
    assert confirm(api, "hld_by_version", "bk_1").status == 200
    assert confirm(api, "hld_by_hash", "bk_2").status == 200
    # And the underivable one is released, its table free again
    assert status_of(api, "hld_unknown") == "released"
    assert api.call("POST", "/v1/holds", hold_request(4, STARTS_AT, zone="terraza")).body["table_ids"] == [
        "T3"
    ]
    # When it runs again, there is nothing to do
    before = table_items(resources)
    assert backfill(*on_moto(resources, "--apply")) == Ran(0, ["nothing to do"], "")
    assert backfill(*on_moto(resources)) == Ran(0, ["dry run: nothing to do"], "")
    assert table_items(resources) == before


def test_skip_underivable_leaves_those_holds_as_they_are(
    api: Api, resources: Resources, imported: None, backfill: Script
) -> None:
    ran = backfill(*on_moto(resources, "--apply", "--skip-underivable"))
    assert ran.code == 0
    out = ran.out
    assert "hld_unknown: leave: no policy version -> left" in out
    assert out[-1] == "filled 2, released 0, left 1, skipped 0"
    assert status_of(api, "hld_unknown") == "held"
    problem(api.call("POST", "/v1/holds", hold_request(4, STARTS_AT, zone="terraza")), 409, "NO_AVAILABILITY")


def test_the_backfill_never_completes_a_hold_its_tables_cannot_seat(
    api: Api, resources: Resources, venue: None, backfill: Script
) -> None:
    # Given a hold lacking metadata with a party of 9 on a 2-seat table (written by an older import)
    unfit = exported("hld_nine", ["T1"], party_size=9, policy_version=1)
    hold = Hold.model_validate(unfit)
    store_of(resources).table.put(hold_item(hold, ENDS_AT + timedelta(minutes=10)))
    # When planned, it is to be released, not completed
    assert backfill(*on_moto(resources)).out[0] == "hld_nine: release: its tables cannot seat its party"
    # With --skip-underivable it is left as it is (and confirmation still refuses it)
    ran = backfill(*on_moto(resources, "--apply", "--skip-underivable"))
    assert ran.out[0] == "hld_nine: leave: its tables cannot seat its party -> left"
    problem(confirm(api, "hld_nine"), 422, "HOLD_METADATA_INCOMPLETE")
    # Applied, it is released and its table freed
    ran = backfill(*on_moto(resources, "--apply"))
    assert ran.out == [
        "hld_nine: release: its tables cannot seat its party -> released",
        "filled 0, released 1, left 0, skipped 0",
    ]
    assert status_of(api, "hld_nine") == "released"
    assert api.call("POST", "/v1/holds", hold_request(2, STARTS_AT)).body["table_ids"] == ["T1"]


def test_a_hold_confirmed_between_read_and_write_is_skipped_not_overwritten(
    api: Api, resources: Resources, imported: None
) -> None:
    class ConfirmedMeanwhile(HoldMigrationTable):
        """Another backfill run completes the hold, and the booking app confirms it, just before
        this run writes."""

        def fill_hold(self, filled: StoredHold, token: str, now: datetime) -> bool:
            assert store_of(resources).fill_hold(filled, token, now)
            assert confirm(api, filled.hold.hold_id, f"bk_{filled.hold.hold_id}").status == 200
            return super().fill_hold(filled, token, now)

        def release_unchanged(self, hold: Any, token: str, writes: Any, now: datetime) -> None:
            # An operator completes it by hand, then the booking app confirms it
            snapshot = SelectionSnapshot(
                party_size=4,
                starts_at=STARTS_AT,
                ends_at=ENDS_AT,
                zone="terraza",
                tables=(SnapshotTable(id="T3", capacity=6),),
                quoted_at=now,
            )
            completed = hold.model_copy(
                update={"policy_hash": CONTRACT_POLICY_HASH, "selection_snapshot": snapshot}
            )
            item = hold_item(completed, ENDS_AT + timedelta(minutes=10))
            store_of(resources).table.put(item)
            assert confirm(api, hold.hold_id, "bk_by_hand").status == 200
            super().release_unchanged(hold, token, writes, now)

    store = ConfirmedMeanwhile(DynamoTable(resources.reservations_table, resources.dynamodb))
    steps = sorted(plan_backfill(store, utc_now()), key=lambda step: step.hold_id)
    results = {step.hold_id: carry_out(store, step, utc_now) for step in steps}
    assert results == {
        "hld_by_hash": StepResult.CHANGED,
        "hld_by_version": StepResult.CHANGED,
        "hld_unknown": StepResult.CHANGED,
    }
    # Every confirm stands: the holds confirmed, their bookings owning their tables
    for hold_id in results:
        assert status_of(api, hold_id) == "confirmed"
    problem(api.call("POST", "/v1/holds", hold_request(4, STARTS_AT, zone="terraza")), 409, "NO_AVAILABILITY")
    assert api.call("GET", "/v1/bookings/bk_by_hand").body["table_ids"] == ["T3"]


def test_a_release_rereads_ownership_records_that_moved(
    api: Api, resources: Resources, imported: None
) -> None:
    class RecordMovedOnce(HoldMigrationTable):
        moved = False

        def release_unchanged(self, hold: Any, token: str, writes: Any, now: datetime) -> None:
            if not self.moved:
                self.moved = True
                # A hold for the next sitting lands on T3's last hour meanwhile
                next_sitting = hold_request(4, AFTER_THE_BUFFER, zone="terraza")
                assert api.call("POST", "/v1/holds", next_sitting).body["table_ids"] == ["T3"]
            super().release_unchanged(hold, token, writes, now)

    store = RecordMovedOnce(DynamoTable(resources.reservations_table, resources.dynamodb))
    [step] = [s for s in plan_backfill(store, utc_now()) if s.hold_id == "hld_unknown"]
    assert carry_out(store, step, utc_now) is StepResult.RELEASED
    assert status_of(api, "hld_unknown") == "released"


def test_no_local_stack_stops_the_scripts(
    import_holds: Script, backfill: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no stack.json in LOCAL_DIR (no `make run`)
    monkeypatch.setenv("LOCAL_DIR", str(tmp_path))
    export = jsonl(tmp_path / "holds.jsonl", exported("hld_a", ["T1"]), "{")

    # When the import runs, Then it says so in one line, with no summary and no line refused
    ran = import_holds(str(export))
    assert (ran.code, ran.out) == (2, [])
    assert ran.err.splitlines() == [
        f"nothing imported: no local stack at {tmp_path / 'stack.json'}: start it with `make run`"
    ]
    assert backfill().code == 3


def test_a_stack_json_whose_stack_is_not_running_stops_the_import_before_any_line(
    import_holds: Script, backfill: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the stack.json of a local stack no longer running (its moto port answers nothing)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    stack = {"aws_endpoint_url": endpoint, "region": REGION, "tables": {"reservations": "reservations"}}
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    monkeypatch.setenv("LOCAL_DIR", str(tmp_path))
    export = jsonl(tmp_path / "holds.jsonl", exported("hld_a", ["T1"]), "{")

    # When the import runs, Then it stops before the first line, saying where it looked
    ran = import_holds(str(export))
    assert (ran.code, ran.out) == (2, [])
    [said] = ran.err.splitlines()
    assert said == (
        "nothing imported: table reservations not reachable (EndpointConnectionError) "
        f"on the local stack at {endpoint}: is `make run` running?"
    )
    # And the backfill stops as early, before scanning anything
    stopped = backfill()
    assert (stopped.code, stopped.out) == (3, [])
    assert f"on the local stack at {endpoint}" in stopped.err


# -- as commands, against a local moto server ---------------------------------------------------


@pytest.fixture
def local_stack(tmp_path: Path, moto_server: MotoServer) -> tuple[Path, dict[str, str]]:
    """moto server with the template's tables and a venue, and the stack.json naming them."""
    dynamodb = moto_server.client("dynamodb")
    store = HoldMigrationTable(DynamoTable(moto_server.tables["reservations"], dynamodb))
    catalog.save_venue(store.venues, "casa", VenueConfig.model_validate(venue_config()), None, utc_now())
    return tmp_path, moto_server.write_stack_json(tmp_path, tables=moto_server.tables)


def test_the_commands_work_against_the_local_stack(local_stack: tuple[Path, dict[str, str]]) -> None:
    local_dir, env = local_stack
    export = jsonl(local_dir / "holds.jsonl", exported("hld_a", ["T1"], policy_version=1), "{")

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, f"scripts/{script}", *args]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    imported = run("import_holds.py", str(export))
    assert (imported.returncode, imported.stdout.splitlines()) == (
        1,
        ["line 2: refused invalid_json", "imported 1, skipped 0, refused 1"],
    )
    assert run("import_holds.py", str(local_dir / "absent.jsonl")).returncode == 2
    planned = run("backfill_hold_metadata.py")
    assert (planned.returncode, planned.stdout.splitlines()[0]) == (
        0,
        "hld_a: fill policy_hash,selection_snapshot",
    )
    applied = run("backfill_hold_metadata.py", "--apply")
    assert (applied.returncode, applied.stdout.splitlines()[-1]) == (
        0,
        "filled 1, released 0, left 0, skipped 0",
    )
    again = run("backfill_hold_metadata.py", "--apply")
    assert (again.returncode, again.stdout) == (0, "nothing to do\n")
