"""mDNS / DNS-SD discovery: the catalogue of home-device service types, TXT parsers and the browser.

The only module that imports zeroconf. Everything from the network is parsed by small pure
functions (`parse_txt`, `sighting`, `to_device`) that take bytes and never trust them; the
`Browser` is a thin asyncio shell around python-zeroconf that turns service changes into
`Found` / `Updated` / `Lost`, rate-limits chatty advertisers, and survives records that never
resolve. Sources of every TXT field: ../shared/protocols/FORMATS.md §6 and §4.3, and the
captures in ../shared/fixtures/mdns/.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ifaddr
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.clock import Clock, RealClock
from hub.model import Device, Protocol, device_id

log = logging.getLogger(__name__)

# RFC 6763 §6.2 asks for TXT records under 1300 bytes; a few kB covers every real device,
# and nothing beyond this is read, so a hostile advertiser cannot make the hub chew on 9 kB.
MAX_TXT_BYTES = 2048
MAX_TXT_ENTRIES = 64
MAX_PROBLEMS = 8
MAX_NAME = 200  # characters of an instance name kept for display and ids
MAX_SERVICES = 2048  # services tracked at once; more are dropped and counted
RESOLVE_TIMEOUT = 3.0  # seconds to wait for SRV/TXT/A of a service before giving up on it
MIN_INTERVAL = 0.5  # seconds between two resolutions of one service: floods are coalesced
BROKER_WAIT = 2.0  # seconds to look for an advertised MQTT broker at start-up
LOCAL = ".local."
META_TYPE = "_services._dns-sd._udp.local."  # RFC 6763 §9: "which service types are here?"

# Control characters (and bidi overrides) in names and values would let an advertiser
# rewrite an installer's terminal or a log line.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, limit: int = MAX_NAME) -> str:
    """Text fit for a terminal and a log: control characters replaced, length bounded."""
    return _UNPRINTABLE.sub("\ufffd", text[:limit])


# ---- TXT records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Txt:
    """A parsed TXT record: its entries (first occurrence of each key wins) and what was wrong with it."""

    entries: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()

    def get(self, key: str) -> str | None:
        """The value of a key, matched case-insensitively (RFC 6763 §6.4); '' for a key without '='."""
        low = key.lower()
        return next((v for k, v in self.entries if k.lower() == low), None)

    def as_dict(self) -> dict[str, str]:
        """Every entry as a dict, keys as the device sent them."""
        return dict(self.entries)


def parse_txt(raw: bytes) -> Txt:
    """Parse TXT rdata (length-prefixed strings) without trusting any byte of it."""
    problems: list[str] = []
    if len(raw) > MAX_TXT_BYTES:
        problems.append(f"TXT record of {len(raw)} bytes: only the first {MAX_TXT_BYTES} read")
        raw = raw[:MAX_TXT_BYTES]
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = 0
    while i < len(raw):
        size = raw[i]
        chunk = raw[i + 1 : i + 1 + size]
        i += 1 + size
        if len(chunk) < size:
            problems.append(f"string of {size} bytes cut off after {len(chunk)}")
            break
        if not chunk:
            continue  # an empty string is how an empty TXT record is sent (RFC 6763 §6.1)
        if len(entries) >= MAX_TXT_ENTRIES:
            problems.append(f"more than {MAX_TXT_ENTRIES} entries: the rest ignored")
            break
        key_bytes, _, value_bytes = chunk.partition(b"=")
        problem, key = _txt_key(key_bytes)
        if problem:
            problems.append(problem)
            continue
        if key.lower() in seen:
            # RFC 6763 §6.4: all but the first occurrence of a key are ignored.
            problems.append(f"duplicate key {key!r}: the first value kept")
            continue
        seen.add(key.lower())
        try:
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"value of {key!r} is not UTF-8")
            value = value_bytes.decode("utf-8", "replace")
        entries.append((key, printable(value, 255)))
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more problems"]
    return Txt(tuple(entries), tuple(problems))


def _txt_key(raw: bytes) -> tuple[str | None, str]:
    if not raw:
        return "entry with an empty key skipped", ""
    # RFC 6763 §6.4: keys are printable US-ASCII (0x20-0x7E) without '='.
    if any(b < 0x20 or b > 0x7E for b in raw):
        return f"key {printable(raw.decode('latin-1'), 40)!r} is not printable ASCII: skipped", ""
    return None, raw.decode("ascii")


def encode_txt(entries: Iterable[str | bytes]) -> bytes:
    """TXT rdata from `key=value` strings (each at most 255 bytes), as a device sends it."""
    out = bytearray()
    for entry in entries:
        data = entry.encode("utf-8") if isinstance(entry, str) else entry
        if len(data) > 255:
            raise ValueError(f"TXT string of {len(data)} bytes: at most 255")
        out += bytes([len(data)]) + data
    return bytes(out) or b"\x00"


# ---- what each service type tells -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one advertisement says about its device, whatever the service type."""

    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    friendly_name: str | None = None
    ids: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    paired: bool | None = None  # HomeKit paired / Matter commissioned; None when the type has no such notion


Parser = Callable[[str, Txt], Parsed | None]


@dataclass(frozen=True, slots=True)
class ServiceType:
    """One row of the catalogue: a DNS-SD service type, who advertises it, what its TXT fields become."""

    type: str
    who: str
    fields: tuple[tuple[str, str], ...]  # (TXT key, what the hub makes of it)
    source: str
    parse: Parser
    device: bool = True  # False: not a home device (an MQTT broker), never put in the inbox


_HEX12 = re.compile(r"[0-9A-Fa-f]{12}")
_MAC_SEPARATORS = re.compile(r"[:\-.]")


def mac_of(text: str | None) -> str | None:
    """A MAC as 12 upper-case hex digits (the form every adapter uses), or None."""
    if not text:
        return None
    digits = _MAC_SEPARATORS.sub("", text)
    return digits.upper() if _HEX12.fullmatch(digits) else None


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit() or len(text) > 12:
        return None
    return int(text)


def _present(**ids: str | None) -> dict[str, str]:
    return {k: v for k, v in ids.items() if v}


# HAP spec R2 table 12-3 (accessory categories), as FORMATS.md §6 lists them.
HAP_CATEGORIES: dict[int, str] = {
    1: "other",
    2: "bridge",
    3: "fan",
    4: "garage door opener",
    5: "lightbulb",
    6: "door lock",
    7: "outlet",
    8: "switch",
    9: "thermostat",
    10: "sensor",
    11: "security system",
    12: "door",
    13: "window",
    14: "window covering",
    15: "programmable switch",
    16: "range extender",
    17: "ip camera",
    18: "video doorbell",
    19: "air purifier",
    20: "heater",
    21: "air conditioner",
    22: "humidifier",
    23: "dehumidifier",
    28: "sprinkler",
    29: "faucet",
    30: "shower head",
    31: "television",
    32: "remote",
}


def _hap(name: str, txt: Txt) -> Parsed:
    ci, sf = _int(txt.get("ci")), _int(txt.get("sf"))
    homekit_id = txt.get("id")
    return Parsed(
        model=txt.get("md") or None,
        ids=_present(homekit_id=homekit_id.upper() if homekit_id else None),
        category=HAP_CATEGORIES.get(ci, f"homekit category {ci}") if ci is not None else None,
        # sf bit 0 set = not paired with any controller yet (FORMATS.md §6).
        paired=None if sf is None else not (sf & 1),
    )


_MATTER_NODE = re.compile(r"([0-9A-Fa-f]{16})-([0-9A-Fa-f]{16})")


def _matter(name: str, txt: Txt) -> Parsed:
    # Operational instance name: <compressed fabric id>-<node id>; one device per fabric.
    match = _MATTER_NODE.fullmatch(name)
    return Parsed(
        ids=_present(matter_node=name.upper() if match else None),
        category="matter node",
        paired=True,
    )


# Matter device library device type ids (Matter 1.3 Device Library), the ones a care home meets.
MATTER_DEVICE_TYPES: dict[int, str] = {
    0x000A: "door lock",
    0x000E: "aggregator (bridge)",
    0x0015: "contact sensor",
    0x0043: "water leak detector",
    0x0076: "smoke/CO alarm",
    0x0100: "on/off light",
    0x0101: "dimmable light",
    0x010A: "on/off plug",
    0x010B: "dimmable plug",
    0x010C: "colour temperature light",
    0x010D: "extended colour light",
    0x000F: "generic switch",
    0x0107: "occupancy sensor",
    0x0202: "window covering",
    0x0301: "thermostat",
    0x0302: "temperature sensor",
    0x0307: "humidity sensor",
}


def _matterc(name: str, txt: Txt) -> Parsed:
    disc = _int(txt.get("D"))
    vendor, _, product = (txt.get("VP") or "").partition("+")
    vid, pid = _int(vendor), _int(product)
    dt = _int(txt.get("DT"))
    # The 12-bit discriminator alone repeats across devices (3840 is every dev kit's
    # default), so the merge key carries vendor and product too when they are given.
    key = None if disc is None or disc > 0xFFF else (f"{vid}:{pid}:{disc}" if vid is not None else str(disc))
    return Parsed(
        manufacturer=f"Matter vendor 0x{vid:04X}" if vid is not None else None,
        model=f"product 0x{pid:04X}" if pid is not None else None,
        friendly_name=txt.get("DN") or None,
        ids=_present(matter_discriminator=key),
        category=MATTER_DEVICE_TYPES.get(dt, f"matter device type 0x{dt:04X}") if dt is not None else "matter device",
        paired=False,  # advertising _matterc = waiting to be commissioned
    )


def _esphome(name: str, txt: Txt) -> Parsed:
    version = txt.get("version")
    return Parsed(
        manufacturer="ESPHome",
        model=txt.get("board") or txt.get("platform") or None,
        firmware=f"ESPHome {version}" if version else None,
        friendly_name=txt.get("friendly_name") or None,
        ids=_present(mac=mac_of(txt.get("mac"))),
        category=txt.get("project_name") or None,
    )


_SHELLY_ID = re.compile(r"shelly[0-9a-z]+-([0-9a-f]{6}|[0-9a-f]{12})", re.IGNORECASE)


def _shelly_ids(name: str, txt: Txt) -> dict[str, str]:
    # The TXT `id` when sent, else the instance label (`shellypro4pm-f008d1d8b8b8`);
    # Gen2+ ids end in the MAC, which is what the MQTT path knows too.
    candidate = txt.get("id") or name
    if not _SHELLY_ID.fullmatch(candidate):
        return {}
    native = candidate.lower()
    return _present(shelly_id=native, mac=mac_of(native.rsplit("-", 1)[1]))


def _shelly(name: str, txt: Txt) -> Parsed:
    gen = _int(txt.get("gen"))
    return Parsed(
        manufacturer="Shelly",
        model=txt.get("app") or None,
        firmware=txt.get("ver") or None,
        ids=_shelly_ids(name, txt),
        category=f"shelly gen{gen}" if gen else "shelly",
    )


def _hue(name: str, txt: Txt) -> Parsed:
    bridge = (txt.get("bridgeid") or "").lower()
    # bridgeid is the MAC with fffe inserted in the middle (EUI-64 style).
    mac = mac_of(bridge[:6] + bridge[10:]) if len(bridge) == 16 and bridge[6:10] == "fffe" else None
    return Parsed(
        manufacturer="Signify (Philips Hue)",
        model=txt.get("modelid") or None,
        ids=_present(hue_bridge_id=bridge.upper() if re.fullmatch(r"[0-9a-f]{16}", bridge) else None, mac=mac),
        category="bridge",
    )


def _googlecast(name: str, txt: Txt) -> Parsed:
    caps = _int(txt.get("ca"))
    cast_id = (txt.get("id") or "").lower()
    return Parsed(
        model=txt.get("md") or None,
        friendly_name=txt.get("fn") or None,
        ids=_present(cast_id=cast_id if re.fullmatch(r"[0-9a-f]{32}", cast_id) else None),
        # ca bit 0 = video out: a display can show a reminder, a speaker only say it.
        category=None if caps is None else ("display" if caps & 1 else "speaker"),
    )


def _wled(name: str, txt: Txt) -> Parsed:
    return Parsed(manufacturer="WLED", ids=_present(mac=mac_of(txt.get("mac"))), category="light")


def _mqtt(name: str, txt: Txt) -> Parsed:
    return Parsed(category="mqtt broker")


def _http(name: str, txt: Txt) -> Parsed | None:
    # Most web UIs are not devices the hub knows; a Shelly (Gen1 only advertises here) is.
    ids = _shelly_ids(name, txt)
    if not ids:
        return None
    gen = _int(txt.get("gen"))
    return Parsed(
        manufacturer="Shelly",
        firmware=txt.get("fw_id") or None,
        ids=ids,
        category=f"shelly gen{gen or 1}",
    )


_F = "FORMATS.md §6"

# The catalogue: one row per service type browsed. The order is the order of preference
# when several services of one device describe it differently.
CATALOGUE: dict[str, ServiceType] = {
    row.type: row
    for row in (
        ServiceType(
            "_shelly._tcp.local.",
            "Shelly Gen2+ devices",
            (
                ("gen", "category (gen2/3/4: RPC API)"),
                ("app", "model family, e.g. Plus1PM"),
                ("ver", "firmware"),
                ("id", "shelly_id, and the MAC from its last 12 hex digits; else the instance label"),
            ),
            "FORMATS.md §4.3; fixtures mdns/shelly_gen2_*",
            _shelly,
        ),
        ServiceType(
            "_esphomelib._tcp.local.",
            "ESPHome native API (port 6053)",
            (
                ("mac", "mac (lower hex without colons; the only key always sent)"),
                ("version", "firmware 'ESPHome <version>'"),
                ("board / platform", "model"),
                ("friendly_name", "name"),
                ("project_name", "category"),
            ),
            f"{_F}; fixtures mdns/esphome_*",
            _esphome,
        ),
        ServiceType(
            "_hap._tcp.local.",
            "HomeKit accessories and bridges",
            (
                ("id", "homekit_id (a pseudo-MAC, not the hardware MAC)"),
                ("md", "model"),
                ("ci", "category (HAP accessory category table)"),
                ("sf", "paired: bit 0 set = not paired yet"),
            ),
            f"{_F}; fixtures mdns/hap_*",
            _hap,
        ),
        ServiceType(
            "_matterc._udp.local.",
            "Matter devices waiting to be commissioned",
            (
                ("D", "matter_discriminator (with VP: '<vid>:<pid>:<D>')"),
                ("VP", "manufacturer (vendor id) and model (product id)"),
                ("DT", "category (Matter device type)"),
                ("DN", "name"),
                ("CM", "commissioning mode; paired = false"),
            ),
            f"{_F}; fixtures mdns/matterc_*",
            _matterc,
        ),
        ServiceType(
            "_matter._tcp.local.",
            "commissioned Matter nodes (one per fabric)",
            (("(instance name)", "matter_node '<fabric id>-<node id>'; paired = true; TXT only has timings"),),
            f"{_F}; fixtures mdns/matter_operational_ptrs_real_packet",
            _matter,
        ),
        ServiceType(
            "_hue._tcp.local.",
            "Philips Hue bridges",
            (("bridgeid", "hue_bridge_id, and the MAC without its fffe"), ("modelid", "model (BSB002, BSB003)")),
            f"{_F}; fixtures mdns/hue_bridge_txt",
            _hue,
        ),
        ServiceType(
            "_googlecast._tcp.local.",
            "Chromecast, Nest speakers and displays",
            (
                ("id", "cast_id (32 hex)"),
                ("md", "model"),
                ("fn", "name (often the room)"),
                ("ca", "category: bit 0 (video) = display, else speaker"),
            ),
            f"{_F}; fixtures mdns/googlecast_*",
            _googlecast,
        ),
        ServiceType(
            "_wled._tcp.local.",
            "WLED LED controllers",
            (("mac", "mac (the only key)"),),
            f"{_F}; fixtures mdns/wled_avahi_browse",
            _wled,
        ),
        ServiceType(
            "_mqtt._tcp.local.",
            "MQTT brokers (used to find the home's broker, never a device)",
            (("(none)", "host and port only"),),
            "DNS-SD service registry (mqtt)",
            _mqtt,
            device=False,
        ),
        ServiceType(
            "_http._tcp.local.",
            "web UIs; only Shelly devices (Gen1 advertise nothing else) are kept",
            (
                ("id / instance label", "shelly_id and mac when it is 'shelly<model>-<hex>'; other services skipped"),
                ("gen", "category (absent on Gen1)"),
                ("fw_id", "firmware"),
            ),
            "FORMATS.md §4.3 (HA matches _http._tcp names shelly*)",
            _http,
        ),
    )
}
MQTT_TYPE = "_mqtt._tcp.local."
DEVICE_TYPES = tuple(t for t, row in CATALOGUE.items() if row.device)


def short_type(service_type: str) -> str:
    """`_hap._tcp.local.` → `_hap._tcp`."""
    return service_type.removesuffix(LOCAL)


# ---- sightings --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sighting:
    """One service as seen on the network, with what its TXT says."""

    service_type: str  # `_shelly._tcp.local.`
    name: str  # the instance label, printable
    full_name: str  # the DNS name as received (key of the service)
    host: str | None
    addresses: tuple[str, ...]
    port: int | None
    manufacturer: str | None
    model: str | None
    firmware: str | None
    friendly_name: str | None
    ids: dict[str, str]
    category: str | None
    paired: bool | None
    txt: Txt

    @property
    def short(self) -> str:
        """The service type without `.local.`."""
        return short_type(self.service_type)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready description for `hub discover --json`."""
        return {
            "service_type": self.short,
            "name": self.name,
            "host": self.host,
            "addresses": list(self.addresses),
            "port": self.port,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "firmware": self.firmware,
            "friendly_name": self.friendly_name,
            "ids": self.ids,
            "category": self.category,
            "paired": self.paired,
            "txt": self.txt.as_dict(),
            "problems": list(self.txt.problems),
            "device_id": stable_id(self) if CATALOGUE[self.service_type].device else None,
        }


def instance_label(service_type: str, full_name: str) -> str:
    """The instance part of `<instance>.<type>`; dots, slashes and CJK in it are kept as sent."""
    suffix = "." + service_type
    label = full_name[: -len(suffix)] if full_name.endswith(suffix) else full_name
    return printable(label)


def sighting(
    service_type: str,
    full_name: str,
    *,
    host: str | None,
    addresses: Sequence[str],
    port: int | None,
    txt: bytes,
) -> Sighting | None:
    """The sighting of one resolved service; None when the type is not catalogued or not a known device."""
    row = CATALOGUE.get(service_type)
    if row is None:
        return None
    label = instance_label(service_type, full_name)
    parsed_txt = parse_txt(txt)
    parsed = row.parse(label, parsed_txt)
    if parsed is None:
        return None
    return Sighting(
        service_type=service_type,
        name=label,
        full_name=full_name,
        host=printable(host) if host else None,
        addresses=tuple(addresses),
        port=port,
        manufacturer=parsed.manufacturer,
        model=parsed.model,
        firmware=parsed.firmware,
        friendly_name=parsed.friendly_name,
        ids=parsed.ids,
        category=parsed.category,
        paired=parsed.paired,
        txt=parsed_txt,
    )


# Which identifier names the device in its hub id, best first: a MAC is shared with the MQTT
# paths, the others are at least stable across reboots, firmware updates and new addresses.
STABLE_IDS = ("mac", "shelly_id", "homekit_id", "hue_bridge_id", "cast_id", "matter_node", "matter_discriminator")
_SAFE = re.compile(r"[^\w.:-]")


def _safe(text: str) -> str:
    # Topic-safe (no / + # or spaces); a lossy replacement gets a short hash so that two
    # names differing only in replaced characters stay two devices.
    safe = _SAFE.sub("_", text)[:120]
    if safe != text:
        safe += "-" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return safe


def stable_id(s: Sighting) -> str:
    """The hub id `mdns-<stable key>`: the best identifier in the TXT, else the type and instance name."""
    for key in STABLE_IDS:
        value = s.ids.get(key)
        if value:
            return device_id(Protocol.MDNS, _safe(value))
    return device_id(Protocol.MDNS, _safe(f"{s.short.strip('_').split('._')[0]}-{s.name}"))


def _order(s: Sighting) -> int:
    return list(CATALOGUE).index(s.service_type)


def to_device(sightings: Iterable[Sighting]) -> Device | None:
    """The device that one or more services with the same stable id describe; None for brokers."""
    seen = sorted((s for s in sightings if CATALOGUE[s.service_type].device), key=_order)
    if not seen:
        return None

    def first(attr: str) -> str | None:
        return next((v for s in seen if (v := getattr(s, attr))), None)

    ids: dict[str, str] = {}
    for s in reversed(seen):
        ids.update(s.ids)
    best = seen[0]
    address = next((a for s in seen for a in s.addresses), None)
    return Device(
        id=stable_id(best),
        name=first("friendly_name") or best.name or best.short,
        protocol=Protocol.MDNS,
        manufacturer=first("manufacturer"),
        model=first("model"),
        firmware=first("firmware"),
        identifiers=ids,
        seen_via=tuple(sorted({f"mdns {s.short}" for s in seen})),
        address=address,
    )


class Devices:
    """The services currently seen, grouped by the device they describe (pure; fed Found/Updated/Lost)."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Sighting]] = {}  # device id -> full name -> sighting
        self._device_of: dict[str, str] = {}  # full name -> device id

    def apply(self, change: Change) -> Device | None:
        """The device as it now is after one change; None when nothing describes a device any more."""
        key = change.sighting.full_name
        old = self._device_of.pop(key, None)
        if old is not None:
            self.services.get(old, {}).pop(key, None)
            if not self.services.get(old):
                self.services.pop(old, None)
        if isinstance(change, Lost):
            return to_device(self.services.get(old, {}).values()) if old else None
        dev_id = stable_id(change.sighting)
        self.services.setdefault(dev_id, {})[key] = change.sighting
        self._device_of[key] = dev_id
        return to_device(self.services[dev_id].values())

    def present(self) -> list[Device]:
        """Every device with at least one service still advertised."""
        return [d for group in self.services.values() if (d := to_device(group.values())) is not None]


# ---- changes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """A service appeared and resolved."""

    sighting: Sighting


@dataclass(frozen=True, slots=True)
class Updated:
    """A known service changed (TXT, address, port)."""

    sighting: Sighting
    before: Sighting


@dataclass(frozen=True, slots=True)
class Lost:
    """A service said goodbye or its records expired; `sighting` is how it was last seen."""

    sighting: Sighting


Change = Found | Updated | Lost


def diff(before: Sighting | None, after: Sighting) -> Change | None:
    """What a new resolution means: Found, Updated, or None when nothing changed."""
    if before is None:
        return Found(after)
    return None if before == after else Updated(after, before)


# ---- interfaces -------------------------------------------------------------------------

_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000


@dataclass(frozen=True, slots=True)
class Interface:
    """One IPv4 address of a network interface, and whether mDNS can work on it."""

    name: str
    address: str
    up: bool | None
    multicast: bool | None
    loopback: bool

    def note(self) -> str:
        """A plain sentence on whether multicast works here."""
        if self.loopback:
            return "loopback: reaches only programs on this machine"
        if self.up is False:
            return "interface is down"
        if self.multicast is False:
            return "no MULTICAST flag: mDNS cannot work on it"
        if self.multicast is None:
            return "multicast flag unknown"
        return "up, multicast"


def _flags(name: str, sys_net: Path) -> int | None:
    try:
        return int((sys_net / name / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def list_interfaces(sys_net: Path = Path("/sys/class/net")) -> list[Interface]:
    """Every IPv4 address of this machine's interfaces (in this network namespace), with its flags."""
    out: list[Interface] = []
    for adapter in ifaddr.get_adapters():
        flags = _flags(adapter.nice_name, sys_net)
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6: the hub browses IPv4 (every catalogued device also answers there)
            loop = ipaddress.ip_address(ip.ip).is_loopback
            out.append(
                Interface(
                    name=adapter.nice_name,
                    address=ip.ip,
                    up=None if flags is None else bool(flags & _IFF_UP),
                    multicast=None if flags is None else bool(flags & _IFF_MULTICAST),
                    loopback=loop or (flags is not None and bool(flags & _IFF_LOOPBACK)),
                )
            )
    return out


def pick_interfaces(wanted: Sequence[str], available: Sequence[Interface]) -> tuple[list[Interface], list[str]]:
    """The interfaces to browse (IP addresses or names; empty = every non-loopback one) and problems."""
    problems: list[str] = []
    if not wanted:
        chosen = [i for i in available if not i.loopback and i.up is not False and i.multicast is not False]
        if not chosen:
            problems.append("no non-loopback IPv4 interface that is up and multicast-capable")
        return chosen, problems
    chosen = []
    for want in wanted:
        hits = [i for i in available if want in (i.address, i.name)]
        if not hits:
            names = ", ".join(f"{i.name} {i.address}" for i in available) or "none"
            problems.append(f"no IPv4 interface is {want!r} (interfaces: {names})")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen, problems


# ---- the browser (the asyncio shell) ----------------------------------------------------


class Browser:
    """Browses service types on some interfaces and yields Found / Updated / Lost; never stops on bad input."""

    def __init__(
        self,
        interfaces: Sequence[str],
        *,
        types: Sequence[str] = DEVICE_TYPES,
        clock: Clock | None = None,
        resolve_timeout: float = RESOLVE_TIMEOUT,
        min_interval: float = MIN_INTERVAL,
        watch_types: bool = False,
    ) -> None:
        self.wanted = tuple(interfaces)
        self.types = tuple(types)
        self.clock: Clock = clock or RealClock()
        self.resolve_timeout = resolve_timeout
        self.min_interval = min_interval
        self.watch_types = watch_types
        self.counters: Counter[str] = Counter()
        self.interfaces: list[Interface] = []
        self.problems: list[str] = []
        self.present: dict[str, Sighting] = {}  # full name -> sighting
        self.answered: set[str] = set()  # service types that answered the RFC 6763 §9 meta query
        self.skipped: dict[str, str] = {}  # full name -> why a resolved service is not a sighting
        self.resolving: set[tuple[str, str]] = set()  # services waiting for their records now
        self._idle = asyncio.Event()
        self._idle.set()
        self._zc: AsyncZeroconf | None = None
        self._browsers: list[AsyncServiceBrowser] = []
        self._dirty: dict[tuple[str, str], ServiceStateChange] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._out: asyncio.Queue[Change] = asyncio.Queue(maxsize=4096)

    def open(self) -> None:
        """Open the sockets and start browsing (synchronous, so a test can open it inside a namespace)."""
        self.interfaces, self.problems = pick_interfaces(self.wanted, list_interfaces())
        if not self.interfaces:
            raise OSError("; ".join(self.problems) or "no interface to browse")
        self._zc = AsyncZeroconf(interfaces=[i.address for i in self.interfaces], ip_version=IPVersion.V4Only)
        self._browsers.append(AsyncServiceBrowser(self._zc.zeroconf, list(self.types), handlers=[self._on_change]))
        if self.watch_types:
            self._browsers.append(AsyncServiceBrowser(self._zc.zeroconf, META_TYPE, handlers=[self._on_type]))
        log.info(
            "mDNS: browsing %d service types on %s",
            len(self.types),
            ", ".join(f"{i.name} {i.address}" for i in self.interfaces),
        )

    async def close(self) -> None:
        """Stop browsing, say nothing more, close the sockets."""
        for task in list(self._workers.values()):
            task.cancel()
        for task in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for browser in self._browsers:
            await browser.async_cancel()
        self._browsers.clear()
        if self._zc is not None:
            zc, self._zc = self._zc, None
            await zc.async_close()

    async def __aenter__(self) -> Browser:
        """Open on entry."""
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on exit."""
        await self.close()

    async def settled(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait is the point
        """Wait (at most `timeout` s) until no service is being resolved; whether that happened."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def changes(self) -> AsyncIterator[Change]:
        """Every change, in order, for as long as the caller listens."""
        while True:
            yield await self._out.get()

    # zeroconf calls handlers by keyword: the parameter names are part of its API.
    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        key = (service_type, name)
        self.counters[f"browse.{state_change.name.lower()}"] += 1
        if key in self._dirty:
            # A device re-announcing faster than MIN_INTERVAL: keep only its latest state.
            self.counters["coalesced"] += 1
        elif key not in self._workers and len(self._workers) + len(self.present) >= MAX_SERVICES:
            self.counters["too_many_services"] += 1
            return
        self._dirty[key] = state_change
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(self._work(key), name=f"mdns {name}")

    def _on_type(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            self.answered.add(printable(name))

    async def _work(self, key: tuple[str, str]) -> None:
        # One worker per service: at most one resolution in flight, at most one per
        # min_interval; changes arriving meanwhile are coalesced into the next round.
        try:
            while key in self._dirty:
                state = self._dirty.pop(key)
                try:
                    await self._handle(key, state)
                except Exception:
                    # A bug or an unexpected record must not stop discovery: log it, count it.
                    self.counters["handler_error"] += 1
                    log.exception("mDNS: handling %s %s failed", state.name, key[1])
                await self.clock.sleep(self.min_interval)
        finally:
            self._workers.pop(key, None)

    async def _handle(self, key: tuple[str, str], state: ServiceStateChange) -> None:
        service_type, name = key
        if state is ServiceStateChange.Removed:
            before = self.present.pop(name, None)
            if before is not None:
                self.counters["lost"] += 1
                await self._emit(Lost(before))
            return
        zc = self._zc
        if zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        self.resolving.add(key)
        self._idle.clear()
        try:
            resolved = await info.async_request(zc.zeroconf, self.resolve_timeout * 1000)
        finally:
            self.resolving.discard(key)
            if not self.resolving:
                self._idle.set()
        if not resolved:
            # A record that never resolves: the service stays as it was last seen (if ever).
            self.counters["unresolved"] += 1
            log.info("mDNS: %s did not resolve within %.1f s", printable(name), self.resolve_timeout)
            return
        after = sighting(
            service_type,
            name,
            host=info.server,
            addresses=info.parsed_addresses(IPVersion.V4Only),
            port=info.port,
            txt=info.text or b"",
        )
        if after is None:
            self.counters["not_a_known_device"] += 1
            self.skipped[name] = f"{short_type(service_type)} without a known device in its name or TXT"
            return
        if after.txt.problems:
            self.counters["txt_problems"] += 1
            log.info("mDNS: TXT of %s: %s", after.name, "; ".join(after.txt.problems))
        change = diff(self.present.get(name), after)
        if change is None:
            self.counters["unchanged"] += 1
            return
        self.present[name] = after
        self.counters["found" if isinstance(change, Found) else "updated"] += 1
        await self._emit(change)

    async def _emit(self, change: Change) -> None:
        if self._out.full():
            # Nobody is reading: drop the oldest rather than grow without bound.
            self._out.get_nowait()
            self.counters["dropped"] += 1
        await self._out.put(change)


# ---- one-shot uses: the broker at start-up, `hub discover` ------------------------------


async def find_broker(interfaces: Sequence[str], wait: float = BROKER_WAIT) -> tuple[str, int, str] | None:
    """The first MQTT broker advertised as `_mqtt._tcp` within `wait` seconds: (address, port, name)."""
    try:
        browser = Browser(interfaces, types=(MQTT_TYPE,))
        browser.open()
    except OSError as exc:
        log.warning("mDNS: cannot look for an MQTT broker: %s", exc)
        return None
    try:
        async with asyncio.timeout(wait):
            async for change in browser.changes():
                s = change.sighting
                if not isinstance(change, Lost) and s.addresses and s.port:
                    return s.addresses[0], s.port, s.name
    except TimeoutError:
        return None
    finally:
        await browser.close()
    return None


@dataclass(slots=True)
class Report:
    """What `hub discover` saw, and what it needs to explain an empty result."""

    interfaces: list[Interface]
    problems: list[str]
    types: tuple[str, ...]
    seconds: float
    found: list[Sighting] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    available: list[Interface] = field(default_factory=list)  # every IPv4 interface of this machine

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "interfaces": [
                {"name": i.name, "address": i.address, "up": i.up, "multicast": i.multicast, "note": i.note()}
                for i in self.interfaces
            ],
            "available": [f"{i.name} {i.address}" for i in self.available],
            "problems": self.problems,
            "service_types": [short_type(t) for t in self.types],
            # What each asked-for type can tell, so that an installer can see why a field is empty.
            "catalogue": {
                short_type(t): {"who": row.who, "txt": dict(row.fields), "source": row.source}
                for t in self.types
                if (row := CATALOGUE.get(t)) is not None
            },
            "seconds": self.seconds,
            "found": [s.as_json() for s in self.found],
            "answered": [short_type(t) for t in self.answered],
            "skipped": self.skipped,
            "counters": self.counters,
        }


async def discover(interfaces: Sequence[str], seconds: float, types: Sequence[str] = tuple(CATALOGUE)) -> Report:
    """Browse for `seconds` and report every catalogued service visible at the end."""
    browser = Browser(interfaces, types=types, watch_types=True)
    try:
        browser.open()
    except OSError as exc:
        problems = browser.problems if str(exc) == "; ".join(browser.problems) else [*browser.problems, str(exc)]
        return Report([], problems, tuple(types), seconds, available=list_interfaces())
    try:
        await browser.clock.sleep(seconds)
        # Services that announced themselves near the end get one more resolve timeout.
        await browser.settled(browser.resolve_timeout)
    finally:
        await browser.close()
    return Report(
        available=list_interfaces(),
        interfaces=browser.interfaces,
        problems=browser.problems,
        types=tuple(types),
        seconds=seconds,
        found=sorted(browser.present.values(), key=lambda s: (s.service_type, s.name)),
        answered=sorted(browser.answered),
        skipped=dict(browser.skipped),
        counters=dict(browser.counters),
    )


def report_text(report: Report) -> str:
    """The report as an installer reads it: what is visible, or why nothing is."""
    lines: list[str] = []
    for s in report.found:
        where = ", ".join(s.addresses) or "no IPv4 address"
        lines.append(f"{s.short}  {s.name!r}  {where}:{s.port}  host {s.host}")
        facts = {
            "device": stable_id(s) if CATALOGUE[s.service_type].device else "(broker, not a device)",
            "manufacturer": s.manufacturer,
            "model": s.model,
            "firmware": s.firmware,
            "name": s.friendly_name,
            "category": s.category,
            "paired": None if s.paired is None else ("yes" if s.paired else "no"),
            **s.ids,
        }
        lines.extend(f"    {k}: {v}" for k, v in facts.items() if v is not None)
        if s.txt.entries:
            lines.append("    txt: " + " ".join(f"{k}={v}" for k, v in s.txt.entries))
        lines.extend(f"    problem: {p}" for p in s.txt.problems)
    if report.found:
        lines.append(f"{len(report.found)} service(s) found in {report.seconds:g} s.")
        return "\n".join(lines)
    lines.append(f"Nothing found in {report.seconds:g} s.")
    lines.append("Interfaces browsed:" if report.interfaces else "Interfaces browsed: none")
    lines.extend(f"  {i.name} {i.address}: {i.note()}" for i in report.interfaces)
    others = [i for i in report.available if i not in report.interfaces]
    if others:
        lines.append("Other interfaces here (choose with --interface):")
        lines.extend(f"  {i.name} {i.address}: {i.note()}" for i in others)
    lines.extend(f"Problem: {p}" for p in report.problems)
    lines.append("Service types asked for: " + ", ".join(short_type(t) for t in report.types))
    if report.answered:
        lines.append("Service types that answered: " + ", ".join(short_type(t) for t in report.answered))
    elif report.interfaces:
        lines.append("No service type answered at all (no mDNS responder reached on these interfaces).")
    lines.extend(f"Skipped {printable(n)}: {why}" for n, why in sorted(report.skipped.items()))
    unresolved = report.counters.get("unresolved", 0)
    if unresolved:
        lines.append(f"{unresolved} service(s) announced themselves but did not resolve in time.")
    return "\n".join(lines)
