"""The activity benchmark's own checks at a tiny scale: the burst stays at the buffer's cap,
and the cycle counts the log's storage requests and leaves no table behind."""

from __future__ import annotations

from azure.data.tables import TableServiceClient

from bench.activity import burst_memory, cycle_cost
from bench.environment import TINY
from tests.azurite import Azurite


def test_a_burst_past_the_cap_holds_the_cap_and_counts_the_rest() -> None:
    """300 requests into a buffer of 200: 200 held, 100 dropped, memory measured."""
    figures = burst_memory(200, 100, capacity=200)
    assert (figures["held"], figures["dropped_full"]) == (200, 100)
    assert figures["bytes_per_entry"] > figures["request_bytes"]
    assert figures["buffer_mib_after_overflow"] < 1.1 * figures["buffer_mib_at_cap"] + 0.05


def test_the_cycle_counts_the_logs_storage_requests_and_drops_its_tables(
        azurite: Azurite) -> None:
    """With the log on the cycle sends more storage requests; every table is deleted."""
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        before = {t.name for t in service.list_tables()}
        figures = cycle_cost(azurite.connection_string, TINY, 1)
        assert {t.name for t in service.list_tables()} == before
    assert figures["storage_per_request_on"] > figures["storage_per_request_off"]
    assert figures["req_s_on"] > 0 and figures["req_s_off"] > 0
