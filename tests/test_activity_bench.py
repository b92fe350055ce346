"""The activity benchmark's own checks at a tiny scale: the burst stays at the buffer's cap,
and the cycle counts the log's storage requests and leaves no table behind."""

from __future__ import annotations

from azure.data.tables import TableServiceClient

from bench.activity import activity_targets, burst_memory, cycle_cost, cycle_figures
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


def test_the_req_s_change_is_the_median_of_paired_rounds_ratios() -> None:
    """Pairs 100/90, 50/52, 80/79: the median ratio (0.9875), not the ratio of medians;
    CPU per request compared pair by pair the same way."""
    off = [(1.0, 100.0, 4.0, 3.0, 0.0), (1.0, 50.0, 4.2, 3.0, 0.0), (1.0, 80.0, 4.4, 3.0, 0.0)]
    on = [(1.04, 90.0, 4.2, 3.3, 0.2), (1.05, 52.0, 4.4, 3.3, 0.1), (1.04, 79.0, 4.6, 3.3, 0.3)]
    figures = cycle_figures("c", off, on)
    assert figures["req_s_ratios"] == [0.9, 1.04, 0.988]
    assert figures["req_s_ratio_median"] == 0.988 and figures["req_s_change_pct"] == -1.2
    assert figures["storage_per_request_added"] == 0.04
    assert figures["app_cpu_ms_per_request_added"] == 0.2
    assert figures["writer_cpu_ms_per_request"] == 0.2
    assert figures["cpu_ratios"] == [0.933, 0.935, 0.937]
    assert figures["cpu_ratio_median"] == 0.935


def test_issue_24_targets_pass_and_fail_on_their_bounds() -> None:
    """+0.05 storage requests, 0.95x req/s and 0.95x CPU pass; +0.06, 0.94x and 0.94x fail;
    a burst held at its cap passes."""
    burst = {"requests": 12_000, "capacity": 10_000, "held": 10_000, "dropped_full": 2_000,
             "buffer_mib_at_cap": 20.0, "buffer_mib_after_overflow": 20.01}

    def outcome(added: float, ratio: float) -> list[bool | None]:
        cycle = cycle_figures("c", [(1.0, 100.0, 4.0, 3.0, 0.0)],
                              [(1.0 + added, 100.0 * ratio, 4.0 / ratio, 3.0 / ratio, 0.1)])
        return [t.passed for t in activity_targets({"cycle": cycle, "burst": burst})]

    assert outcome(0.05, 0.95) == [True, True, True, True]
    assert outcome(0.06, 0.94) == [False, False, False, True]
    assert activity_targets(None) == []
