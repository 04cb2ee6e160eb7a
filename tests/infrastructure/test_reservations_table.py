"""The reservations table as synthesized: keys, durability, expiry and the stream the outbox reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage


def test_the_reservations_table_is_keyed_generically_and_billed_on_demand(stage: SynthesizedStage) -> None:
    _, table = stage.reservations_table
    properties = table["Properties"]
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    # (and the keys of the open-flows index: test_drift_sweep.py)
    assert properties["AttributeDefinitions"][:2] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in properties


def test_the_reservations_table_is_recoverable_encrypted_and_expires_dead_items(
    stage: SynthesizedStage,
) -> None:
    properties = stage.reservations_table[1]["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # AWS-managed KMS key: SSE on, no customer key to manage
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_reservations_table_streams_new_images_for_the_outbox(stage: SynthesizedStage) -> None:
    assert stage.reservations_table[1]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_prod_keeps_the_reservations_table_when_the_stack_goes(prod: SynthesizedStage) -> None:
    _, table = prod.reservations_table
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_dev_and_local_reservations_tables_go_with_their_stack(
    dev: SynthesizedStage, local: SynthesizedStage
) -> None:
    for stage in (dev, local):
        assert stage.reservations_table[1]["DeletionPolicy"] == "Delete"


def test_operators_find_the_reservations_table_by_output(stage: SynthesizedStage) -> None:
    assert stage.template_json["Outputs"]["ReservationsTableName"]["Value"] == {
        "Ref": stage.reservations_table[0]
    }
