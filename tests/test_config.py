"""devices.yaml: the shipped example loads, and every broken file gets the exact located message."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.config import (
    MAX_BYTES,
    Config,
    ConfigError,
    Problem,
    Role,
    format_problems,
    json_schema,
    load_config,
    load_config_text,
    summary,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "devices.yaml"
DATA = Path(__file__).resolve().parent / "data" / "config"
ROLES = ", ".join(role.value for role in Role)

# file in tests/data/config -> the exact output of format_problems, with {f} for the file's path
# and {dir} for its folder.
BROKEN = {
    "bad_indentation.yaml": "{f}:4:8: unexpected ':' here — check this line's indentation, "
    "or put the value in quotes if it contains ': '",
    "unknown_key.yaml": "{f}:15:5: unknown key 'rom' in devices[1] — did you mean 'room'? "
    "allowed: id, name, room, role, name_zh",
    "bad_role.yaml": "{f}:12:11: unknown role 'exit-door' in devices[0] — did you mean 'exit_door'? "
    f"allowed: {ROLES}",
    "bad_language.yaml": "{f}:5:13: unknown language 'zh-cn' in home — did you mean 'zh-CN'? allowed: zh-CN, en",
    "wrong_type.yaml": "{f}:14:14: mqtt.keepalive should be a whole number, not text 'thirty seconds'",
    "number_as_name.yaml": "{f}:10:11: devices[0].name should be text, not the number 2024 (put it in quotes)",
    "duplicate_device.yaml": "{f}:13:9: duplicate device 'z2m-0x00158d0001a2b3c4': already listed as devices[0]",
    "unknown_room.yaml": "{f}:15:11: unknown room 'bathrom' — did you mean 'bathroom'? rooms: bedroom, bathroom",
    "missing_password_file.yaml": "{f}:4:18: mqtt.password_file: file 'secrets/no-such-file' not found "
    "(looked for '{dir}/secrets/no-such-file')",
    "password_and_file.yaml": "{f}:4:18: give either password or password_file, not both",
    "bad_mqtt_url.yaml": "{f}:2:8: mqtt.url: 'mqtt://127.0.0.1:70000' is not mqtt[s]://host[:port] "
    "with a port from 1 to 65535",
    "bad_mqtt_scheme.yaml": "{f}:2:8: mqtt.url: 'tcp://127.0.0.1:1883' should start with mqtt:// or mqtts:// "
    "(e.g. 'mqtt://127.0.0.1:1883')",
    "bad_timezone.yaml": "{f}:5:13: home.timezone: unknown time zone 'Asia/Shangai' — did you mean 'Asia/Shanghai'?",
    "tabs.yaml": "{f}:4:1: tabs are not allowed for indentation, use spaces",
    "not_utf8.yaml": "{f}:4:9: the file is not UTF-8: byte 0xcd at offset 76 cannot be read "
    "(it looks like GBK/GB18030); save the file as UTF-8",
    "empty.yaml": "{f}:1:1: the file is empty: start from the example devices.yaml that comes with the hub",
    "only_comments.yaml": "{f}:1:1: the file is empty: start from the example devices.yaml that comes with the hub",
    "top_level_list.yaml": "{f}:1:1: the top level should be a mapping of sections (home:, rooms:, devices: …), "
    "not a list",
    "duplicate_yaml_key.yaml": "{f}:5:3: duplicate key 'id' (first on line 3)",
    "alias_bomb.yaml": "{f}:2:8: YAML aliases ('*a') are not allowed: write the value out in full "
    "(72 aliases in this file)",
    "missing_home_id.yaml": "{f}:2:1: missing required key 'id' in home",
    "bad_home_id.yaml": "{f}:3:7: home.id: 'Test Home' is not a valid id: use 1-63 lower-case letters, digits, "
    "'-' or '_', starting with a letter or digit (e.g. 'wang-home')",
    "rule_without_kind.yaml": "{f}:15:5: rule without 'kind' (e.g. 'kind: inactivity')",
    "no_tier_one.yaml": "{f}:15:5: no caregiver has tier 1: someone must be told first (set 'tier: 1')",
    "bad_notify_url.yaml": "{f}:18:16: people.caregivers[0].notify[0]: 'li.mei@example.com' is not a "
    "notification URL: expected scheme://…, e.g. 'ntfy://localhost/mum'",
    "bad_store_url.yaml": "{f}:14:8: store.url: 'postgresql://hub@127.0.0.1/hub' should start with sqlite:/// "
    "or postgresql+psycopg:// — did you mean 'postgresql+psycopg'?",
    "out_of_range.yaml": "{f}:15:17: store.retention.state_days must be at least 1, not the number 0",
    "two_errors.yaml": "{f}:5:3: unknown key 'timezon' in home — did you mean 'timezone'? "
    "allowed: id, name, timezone, language\n"
    f"{{f}}:13:11: unknown role 'bedd' in devices[0] — did you mean 'bed'? allowed: {ROLES}",
    "many_errors.yaml": "{f}:5:13: unknown language 'fr' in home — allowed: zh-CN, en\n"
    "{f}:12:11: unknown room 'kitchen' — rooms: bedroom, bathroom\n"
    "{f}:15:8: mqtt.url: 'mqtt://' has no host (e.g. 'mqtt://192.168.1.5:1883')\n"
    "{f}:16:14: mqtt.keepalive must be at least 5, not the number 1",
}


def test_example_loads_and_summary_counts_it() -> None:
    config = load_config(EXAMPLE)
    assert config.home.id == "wang-home"
    assert config.mqtt.url is None
    assert config.discovery.mdns.interfaces == ("127.0.0.1",)
    assert [c.tier for c in config.people.caregivers] == [1, 2]
    assert {d.room for d in config.devices} <= {r.id for r in config.rooms}
    assert {Role.BED, Role.BATHROOM_DOOR, Role.EXIT_DOOR, Role.COOKTOP, Role.SOS} <= {d.role for d in config.devices}
    assert [rule["kind"] for rule in config.rules] == [
        "inactivity",
        "night_path_light",
        "sos",
        "smoke_gas_co",
        "bathroom_too_long",
    ]
    text = summary(config)
    assert f"{len(config.rooms)} rooms, {len(config.devices)} devices" in text
    assert f"{len(config.rules)} rules" in text
    assert "2 caregivers" in text
    assert "wang-home" in text


def test_json_schema_describes_the_file() -> None:
    schema = json_schema()
    assert isinstance(schema, dict)
    assert {"home", "mqtt", "devices", "rules"} <= set(schema["properties"])
    assert "description" in schema["$defs"]["Home"]["properties"]["id"]
    assert schema["$defs"]["DeviceEntry"]["additionalProperties"] is False


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_gets_exact_located_message(name: str) -> None:
    path = DATA / name
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert format_problems(info.value) == BROKEN[name].format(f=path, dir=path.parent)


def test_at_least_18_distinct_broken_files() -> None:
    assert len(BROKEN) >= 18
    assert sorted(BROKEN) == sorted(p.name for p in DATA.glob("*.yaml") if p.name != "good_with_password.yaml")


def test_all_problems_are_reported_together_sorted_by_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "many_errors.yaml")
    problems = info.value.problems
    assert len(problems) == 4
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    assert str(info.value) == format_problems(info.value)


def test_a_10_mib_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_bytes(b"home:\n" + b"  # padding\n" * (10 * MAX_BYTES // 12))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert format_problems(info.value) == f"{path}: the file is 10.0 MiB; the limit is 1 MiB"
    with pytest.raises(ConfigError, match="the limit is 1 MiB"):
        load_config_text(path.read_bytes(), "devices.yaml")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert format_problems(info.value) == f"{tmp_path / 'nope.yaml'}: file not found"
    (tmp_path / "devices.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert format_problems(info.value) == (
        f"{tmp_path}: is a folder, not a file; did you mean '{tmp_path / 'devices.yaml'}'?"
    )


def test_password_file_is_resolved_next_to_the_yaml_and_stripped() -> None:
    config = load_config(DATA / "good_with_password.yaml")
    assert config.mqtt.password_file == DATA / "mqtt-password"
    assert config.mqtt.password_text() == "s3cret"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.local", 8883, True)
    assert load_config(EXAMPLE).mqtt.local_port == 1883


def test_load_config_text_takes_bytes_with_a_bom_and_a_base_dir() -> None:
    text = (DATA / "good_with_password.yaml").read_text(encoding="utf-8")
    config = load_config_text("\ufeff".encode() + text.encode(), "x.yaml", base_dir=DATA)
    assert config.mqtt.password_text() == "s3cret"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "x.yaml", base_dir=DATA / "elsewhere")
    assert info.value.problems[0].message.startswith("mqtt.password_file: file 'mqtt-password' not found")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n  b: [" + "[" * 40 + "]" * 41 + "\n", "devices.yaml:2:36: nested more than 32 levels deep"),
        (
            "home: !!str x\n",
            "devices.yaml:1:7: YAML tags ('tag:yaml.org,2002:str') are not allowed: remove the tag, "
            "quote the value if needed",
        ),
        ("home:\n  name: a\x01b\n", "devices.yaml:2:10: character U+0001 is not allowed in YAML; remove it"),
        ("a: 1\n---\nb: 2\n", "devices.yaml:2:1: only one YAML document is allowed: remove the '---' line"),
        ("version: 2\n", "devices.yaml:1:1: missing required key 'home' in the top level\n"
         "devices.yaml:1:10: version: 2 is not supported: this hub reads version 1"),
        ("home: [1]\n", "devices.yaml:1:7: home should be a mapping (key: value lines), not a list"),
        ("? home:\n  id: h\n", "devices.yaml:1:3: a key must be plain text, not a list or a mapping "
         "(check for a stray '? ')"),
        ("home:\n  id: h\n  name: H\n1: 2\n", "devices.yaml:4:1: keys must be text, not the number 1"),
        ("home:\n  id: h\n  name: H\nmqtt:\n  url: mqtt://u:p@h\n",
         "devices.yaml:5:8: mqtt.url: put the user name in mqtt.username and the password in mqtt.password_file"),
        ("home:\n  id: h\n  name: H\ndiscovery:\n  mdns:\n    interfaces: ['eth 0', '::1', wlan0]\n",
         "devices.yaml:6:18: discovery.mdns.interfaces[0]: 'eth 0' is neither an IP address nor an interface "
         "name (e.g. '192.168.1.10', 'eth0')"),
    ],
)  # fmt: skip
def test_more_yaml_mistakes(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "devices.yaml")
    assert format_problems(info.value) == expected


def test_config_refuses_cross_mistakes_when_built_directly() -> None:
    with pytest.raises(ValueError, match="unknown room 'attic'"):
        Config.model_validate(
            {"home": {"id": "h", "name": "H"}, "devices": [{"id": "z2m-0x1", "name": "D", "room": "attic"}]}
        )


def test_problem_without_position_prints_file_only() -> None:
    assert str(Problem("devices.yaml", 0, 0, "file not found")) == "devices.yaml: file not found"
    assert str(Problem("devices.yaml", 3, 5, "x")) == "devices.yaml:3:5: x"


# --- fuzzing: whatever the input, only ConfigError may escape --------------------------------------

EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(data: str | bytes) -> None:
    """Load, letting only ConfigError through; its problems must be located one-line messages."""
    problems = [Problem("fuzz.yaml", 1, 1, "loaded")]
    try:
        load_config_text(data, "fuzz.yaml", base_dir=DATA)
    except ConfigError as err:
        problems = err.problems
    assert problems
    assert all(p.line >= 0 and p.column >= 0 and p.message and "\n" not in p.message for p in problems)


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(data: bytes) -> None:
    _load(data)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_fuzz_random_text(text: str) -> None:
    _load(text)


YAML_BITS = st.sampled_from(
    [":", "- ", "\t", "  ", "\n", "&a ", "*a", "!!str ", "[", "]", "{", "}", "'", '"', "#", "---\n", "? ",
     "|\n", "0x1f", "2020-13-45", "9" * 5000, "~", "yes", "room: attic", "role: bedd", "id: X",
     "password_file: /", "\x00", "\ufeff", "王"]
)  # fmt: skip


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    text = EXAMPLE_TEXT
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        insert = draw(st.one_of(YAML_BITS, st.text(max_size=8)))
        text = text[:start] + insert + text[end:]
    return text


@FUZZ
@given(mutated_example())
def test_fuzz_mutated_example(text: str) -> None:
    _load(text)
