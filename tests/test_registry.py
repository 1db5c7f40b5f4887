"""The registry's pure merge, adoption and routing rules."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.api import EVENT_ADAPTER, DeviceState, discovered_json, event_json, state_json
from hub.model import (
    Availability,
    AvailabilityChanged,
    AvailabilityState,
    Device,
    DeviceDiscovered,
    DeviceRemoved,
    Kind,
    Point,
    PointEvent,
    Protocol,
    StateChanged,
    Status,
    Value,
)
from hub.registry import CommandRefused, Forward, Named, PublishDevice, PublishState, Registry, Unpublish, _copy
from hub.reports import online, state_changed

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
IEEE = "0x00158d0001a2b3c4"


def z2m_plug() -> Device:
    return Device(
        id=f"z2m-{IEEE}",
        name="Kitchen plug",
        protocol=Protocol.Z2M,
        identifiers={"ieee": IEEE},
        points=(
            Point(key="switch", kind=Kind.SWITCH, writable=True),
            Point(key="power", kind=Kind.POWER, unit="W"),
        ),
    )


def ha_copy() -> Device:
    return Device(
        id=f"ha-zigbee2mqtt_{IEEE}",
        name="Kitchen plug (HA)",
        protocol=Protocol.HA,
        identifiers={"ieee": IEEE, "unique_id": "x"},
        points=(
            Point(key="plug_switch", kind=Kind.SWITCH, writable=True),
            Point(key="plug_energy", kind=Kind.ENERGY, unit="kWh"),
        ),
    )


def discovered(dev: Device) -> DeviceDiscovered:
    return DeviceDiscovered(ts=T0, device=dev)


def test_discovered_device_is_pending_and_published_to_inbox() -> None:
    reg = Registry()
    effects = reg.apply(discovered(z2m_plug()))
    published = [e.device for e in effects if isinstance(e, PublishDevice)]
    assert [d.status for d in published] == [Status.PENDING]
    assert not reg.active(f"z2m-{IEEE}")


def test_named_device_is_adopted_with_installer_name_room_and_role() -> None:
    reg = Registry({f"z2m-{IEEE}": Named("Cooktop", "kitchen", "cooktop")})
    reg.apply(discovered(z2m_plug()))
    dev = reg.get(f"z2m-{IEEE}")
    assert dev is not None
    assert (dev.device.name, dev.device.room, dev.device.role, dev.device.status) == (
        "Cooktop",
        "kitchen",
        "cooktop",
        Status.ADOPTED,
    )


def test_copy_seen_through_ha_discovery_merges_into_native_device() -> None:
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    reg.apply(discovered(ha_copy()))
    assert list(reg.records) == [f"z2m-{IEEE}"]
    dev = reg.get(f"ha-zigbee2mqtt_{IEEE}")
    assert dev is not None
    # The HA switch duplicates the native one and is dropped; the energy point is new.
    assert [p.key for p in dev.device.points] == ["switch", "power", "plug_energy"]
    assert dev.owners["plug_energy"] == f"ha-zigbee2mqtt_{IEEE}"


def test_native_path_arriving_later_becomes_canonical() -> None:
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(ha_copy()))
    reg.apply(discovered(z2m_plug()))
    assert list(reg.records) == [f"z2m-{IEEE}"]
    assert reg.get(f"ha-zigbee2mqtt_{IEEE}") is reg.get(f"z2m-{IEEE}")


def test_partial_updates_merge_and_only_changes_are_forwarded() -> None:
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"switch": True, "power": 5.0}))
    effects = reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"power": 120.0, "switch": True}))
    state = next(e for e in effects if isinstance(e, PublishState))
    assert state.values == {"switch": True, "power": 120.0}
    forwarded = [e.event for e in effects if isinstance(e, Forward)]
    assert [f.values for f in forwarded if isinstance(f, StateChanged)] == [{"power": 120.0}]


def test_published_states_keep_the_values_of_their_moment() -> None:
    # Effects share the record's values rather than copying them, so a later report (or a
    # restored state) must replace the record's dict, never change it in place.
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    first = reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"switch": True, "power": 5.0}))
    reg.seed([], {f"z2m-{IEEE}": (T0, {"switch": False})})
    second = reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"power": 120.0}))
    reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"power": 7.0}))
    published = [e.values for e in [*first, *second] if isinstance(e, PublishState)]
    assert published == [{"switch": True, "power": 5.0}, {"switch": False, "power": 120.0}]


def test_composite_values_merge_key_by_key() -> None:
    reg = Registry(auto_adopt=True)
    light = Device(id="z2m-0x1", name="Lamp", protocol=Protocol.Z2M, points=(Point(key="light", kind=Kind.LIGHT),))
    reg.apply(discovered(light))
    reg.apply(StateChanged(ts=T0, device_id="z2m-0x1", values={"light": {"on": True, "brightness": 40}}))
    reg.apply(StateChanged(ts=T0, device_id="z2m-0x1", values={"light": {"brightness": 80}}))
    rec = reg.get("z2m-0x1")
    assert rec is not None
    assert rec.values["light"] == {"on": True, "brightness": 80}


def test_report_brings_unknown_device_online_and_offline_is_published() -> None:
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    effects = reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"power": 1.0}))
    assert any(isinstance(e, Forward) and isinstance(e.event, AvailabilityChanged) for e in effects)
    off = Availability(state=AvailabilityState.OFFLINE, reason="zigbee2mqtt availability: offline")
    effects = reg.apply(AvailabilityChanged(ts=T0, device_id=f"z2m-{IEEE}", availability=off))
    rec = reg.get(f"z2m-{IEEE}")
    assert rec is not None
    assert rec.device.availability.state is AvailabilityState.OFFLINE
    assert rec.device.availability.last_seen == T0  # kept from the last report
    assert any(isinstance(e, PublishState) and e.availability.state is AvailabilityState.OFFLINE for e in effects)


def test_commands_to_pending_device_are_refused_with_a_reason() -> None:
    reg = Registry()
    reg.apply(discovered(z2m_plug()))
    with pytest.raises(CommandRefused, match="pending: adopt it"):
        reg.route(f"z2m-{IEEE}", {"switch": True})


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"nope": True}, "has no point 'nope'"),
        ({"power": 3}, "read-only"),
        ({"switch": {"x": [1]}}, None),  # composite accepted by type; the adapter decides
    ],
)
def test_route_checks_points(values: dict[str, object], reason: str | None) -> None:
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    if reason is None:
        assert reg.route(f"z2m-{IEEE}", values)  # type: ignore[arg-type]
    else:
        with pytest.raises(CommandRefused, match=reason):
            reg.route(f"z2m-{IEEE}", values)  # type: ignore[arg-type]


def test_route_splits_by_owning_path() -> None:
    energy = ha_copy().model_copy(update={"points": (Point(key="led", kind=Kind.LIGHT, writable=True),)})
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    reg.apply(discovered(energy))
    routes = reg.route(f"z2m-{IEEE}", {"switch": False, "led": {"on": True}})
    assert {r.device.id: r.values for r in routes} == {
        f"z2m-{IEEE}": {"switch": False},
        f"ha-zigbee2mqtt_{IEEE}": {"led": {"on": True}},
    }


def test_each_path_reports_only_the_points_it_owns() -> None:
    # The native path owns its points; the copy owns what only it adds (a duplicate kind under
    # another name is dropped, so its reports are its own); keys no path describes pass.
    copy = ha_copy().model_copy(update={"points": (*ha_copy().points, Point(key="led", kind=Kind.LIGHT))})
    reg = Registry(auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    reg.apply(discovered(copy))
    reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"switch": True, "led": {"on": True}, "x": 1}))
    reg.apply(
        StateChanged(
            ts=T0, device_id=copy.id, values={"switch": False, "led": {"on": False}, "plug_switch": True, "y": 2}
        )
    )
    rec = reg.get(f"z2m-{IEEE}")
    assert rec is not None
    assert rec.values == {"switch": True, "x": 1, "led": {"on": False}, "plug_switch": True, "y": 2}


def test_ignored_device_is_unpublished_and_its_state_dropped() -> None:
    reg = Registry()
    reg.apply(discovered(z2m_plug()))
    assert reg.decide(f"z2m-{IEEE}", Status.IGNORED, T0) == [Unpublish(f"z2m-{IEEE}")]
    assert reg.apply(StateChanged(ts=T0, device_id=f"z2m-{IEEE}", values={"power": 1.0})) == []
    assert reg.apply(PointEvent(ts=T0, device_id=f"z2m-{IEEE}", key="action", value="single")) == []


def test_ignore_decision_survives_rediscovery() -> None:
    reg = Registry(decisions={f"z2m-{IEEE}": Status.IGNORED})
    effects = reg.apply(discovered(z2m_plug()))
    assert effects == [Unpublish(f"z2m-{IEEE}")]
    assert reg.apply(discovered(z2m_plug())) == []


def test_removal_unpublishes_unnamed_and_keeps_named_device_offline() -> None:
    reg = Registry({"z2m-0x2": Named("Bed", "bedroom")}, auto_adopt=True)
    reg.apply(discovered(z2m_plug()))
    reg.apply(discovered(Device(id="z2m-0x2", name="x", protocol=Protocol.Z2M)))
    assert Unpublish(f"z2m-{IEEE}") in reg.apply(DeviceRemoved(ts=T0, device_id=f"z2m-{IEEE}", reason="left"))
    assert reg.get(f"z2m-{IEEE}") is None
    reg.apply(DeviceRemoved(ts=T0, device_id="z2m-0x2", reason="left the network"))
    rec = reg.get("z2m-0x2")
    assert rec is not None
    assert (rec.device.availability.state, rec.device.availability.reason) == (
        AvailabilityState.OFFLINE,
        "left the network",
    )


def test_placeholders_for_named_devices_not_yet_seen() -> None:
    reg = Registry({"tasmota-A4CF12B3C4D5": Named("Kettle", "kitchen", "kettle")})
    effects = reg.placeholders()
    assert len(effects) == 1
    dev = reg.get("tasmota-A4CF12B3C4D5")
    assert dev is not None
    assert (dev.device.protocol, dev.device.status, dev.device.availability.reason) == (
        Protocol.TASMOTA,
        Status.ADOPTED,
        "not seen yet",
    )
    assert reg.placeholders() == []


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),  # beyond 64 bits too: orjson refuses those
    st.floats(),  # NaN and infinities are written as null by both
    st.text(st.characters(exclude_categories=("Cs",))),
)
_VALUES = st.dictionaries(st.text(max_size=8), st.one_of(_SCALARS, st.dictionaries(st.text(max_size=4), _SCALARS)))
_TIMES = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]))


@given(ts=_TIMES, values=_VALUES, state=st.sampled_from(AvailabilityState), reason=st.none() | st.text())
def test_per_message_builders_equal_the_validated_models(
    ts: datetime, values: dict[str, Value], state: AvailabilityState, reason: str | None
) -> None:
    event = state_changed(ts, "z2m-0x1", values)
    assert event == StateChanged(ts=ts, device_id="z2m-0x1", values=values)
    assert event_json(event) == EVENT_ADAPTER.dump_json(StateChanged(ts=ts, device_id="z2m-0x1", values=values))
    assert online(ts) == Availability(state=AvailabilityState.ONLINE, reason=None, last_seen=ts)
    av = Availability(state=state, reason=reason, last_seen=ts)
    validated = DeviceState(ts=ts, values=values, availability=av)
    assert state_json(ts, values, av) == validated.model_dump_json().encode()


@given(ts=_TIMES)
def test_a_discovery_written_around_its_stored_description_is_the_event_as_dumped(ts: datetime) -> None:
    for dev in (z2m_plug(), ha_copy()):
        event = DeviceDiscovered(ts=ts, device=dev)
        assert discovered_json(event, dev.model_dump_json()) == event_json(event)


_KEPT_STATES = """
from datetime import UTC, datetime
from hub.api import state_json
from hub.reports import online
def rss(): return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
ts = datetime.now(UTC)
before = rss()
kept = [state_json(ts, {"temperature": 21.5, "n": i}, online(ts)) for i in range(20_000)]
print(rss() - before)
"""


def test_kept_state_payloads_cost_their_length_not_the_block_they_were_written_in() -> None:
    # The link keeps every device's last state payload. orjson's bytes kept its ~4 KB writing
    # block each (78 MB for these 20,000 of ~200 bytes): a copy of their length costs ~4 MB.
    grown = subprocess.run([sys.executable, "-c", _KEPT_STATES], capture_output=True, text=True, check=True)
    assert float(grown.stdout) < 20


def test_the_change_log_names_devices_described_anew_not_sightings(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(auto_adopt=True)
    start = reg.generation
    plug = z2m_plug()
    reg.apply(discovered(plug))
    # A sighting that only moves last_seen, and an availability report: the description is the same.
    reg.apply(DeviceDiscovered(ts=T0.replace(hour=9), device=plug))
    reg.apply(AvailabilityChanged(ts=T0, device_id=plug.id, availability=Availability(state=AvailabilityState.ONLINE)))
    assert reg.changed_since(start) == [plug.id]
    # A better path takes over a copy: the copy's id leaves, the native id arrives.
    seen = reg.generation
    reg.apply(discovered(ha_copy().model_copy(update={"identifiers": {"ieee": "0x1"}})))
    reg.apply(discovered(plug.model_copy(update={"id": "z2m-0x1", "identifiers": {"ieee": "0x1"}})))
    changed = reg.changed_since(seen)
    assert changed is not None
    assert list(dict.fromkeys(changed)) == [ha_copy().id, "z2m-0x1"]
    assert ha_copy().id not in reg.records
    reg.apply(DeviceRemoved(ts=T0, device_id=plug.id, reason="left the network"))
    assert reg.changed_since(reg.generation - 1) == [plug.id]
    # A reader further behind than the log is told to start over.
    monkeypatch.setattr("hub.registry.CHANGE_LOG", 2)
    for n in range(6):
        reg.apply(discovered(plug.model_copy(update={"id": f"z2m-{n}", "identifiers": {}})))
    assert reg.changed_since(start) is None
    assert reg.changed_since(reg.generation - 2) == ["z2m-4", "z2m-5"]


def test_registry_copies_equal_pydantic_copies() -> None:
    # The registry builds a device's availability copies itself on every report (no
    # model_copy): they must be what model_copy gives, fields set included.
    dev = ha_copy()
    seen = online(T0)
    for update in ({"availability": seen}, {"availability": seen, "name": "Hall light"}):
        mine, theirs = _copy(dev, update), dev.model_copy(update=update)
        assert mine == theirs
        assert mine.model_fields_set == theirs.model_fields_set
        assert dev.availability != seen  # the original is left as it was
