"""Plain-language alert texts in Chinese and English: what happened (room, time) and what to do.

The catalogue is code, not configuration: a rule names a message by its code and gives the
numbers; rooms and devices are shown by their names in the reader's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.api import Language

LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")

# code -> (message by language, advice by language)
CATALOGUE: dict[str, tuple[dict[Language, str], dict[Language, str]]] = {
    "inactivity": (
        {
            "zh-CN": "家中自 {since} 起已 {minutes} 分钟没有任何活动，超过 {limit} 分钟上限",
            "en": "No activity at home for {minutes} min since {since}, over the {limit} min limit",
        },
        {
            "zh-CN": "请给老人打电话确认是否安好；无人接听请上门或请邻居查看。",
            "en": "Phone the resident to check they are well; if there is no answer, visit or ask a neighbour.",
        },
    ),
    "no_exit_use": (
        {
            "zh-CN": "入户门自 {since} 起已 {hours} 小时没有使用",
            "en": "The exit door has not been used for {hours} h (since {since})",
        },
        {
            "zh-CN": "请联系老人，了解是否身体不适或长时间没有出门。",
            "en": "Check in on the resident: they may be unwell or not going out.",
        },
    ),
    "morning_check": (
        {
            "zh-CN": "到 {deadline} 仍无起床迹象：自 {start} 起卧室外没有任何活动",
            "en": "No sign of getting up by {deadline}: no activity outside the bedroom since {start}",
        },
        {"zh-CN": "请立即打电话；无人接听请上门查看。", "en": "Phone the resident now; visit if there is no answer."},
    ),
    "bathroom_too_long": (
        {
            "zh-CN": "{room}有人已 {minutes} 分钟，超过{period} {limit} 分钟上限（{since} 进入）",
            "en": "{room} occupied for {minutes} min, over the {limit} min {period} limit (since {since})",
        },
        {
            "zh-CN": "请呼叫或打电话；无回应请到{room}查看，老人可能跌倒。",
            "en": "Call out or phone; if there is no answer, check the {room}: a fall is possible.",
        },
    ),
    "night_out_of_bed": (
        {
            "zh-CN": "夜间离床已 {minutes} 分钟（{since} 起床），超过 {limit} 分钟上限",
            "en": "Out of bed for {minutes} min at night (up since {since}), over the {limit} min limit",
        },
        {
            "zh-CN": "请打电话或查看：老人可能跌倒或迷失方向。",
            "en": "Phone or check: the resident may have fallen or be confused.",
        },
    ),
    "night_exit": (
        {"zh-CN": "{room}：入户门在夜间 {time} 被打开", "en": "{room}: the exit door opened at night, at {time}"},
        {
            "zh-CN": "走廊灯已打开。请打电话确认老人是否安全。",
            "en": "The hallway light is on. Phone the resident to check they are safe.",
        },
    ),
    "night_exit_gone": (
        {
            "zh-CN": "入户门 {time} 关闭后屋内已 {minutes} 分钟无人活动：老人可能已离家",
            "en": "The exit door closed at {time} and no one has moved inside for {minutes} min: "
            "the resident may have left",
        },
        {
            "zh-CN": "请立即打电话；无人接听请在附近寻找并求助 110。",
            "en": "Phone at once; if there is no answer, search nearby and call the police (110).",
        },
    ),
    "door_left_open": (
        {
            "zh-CN": "{room}：入户门自 {since} 起已打开 {minutes} 分钟",
            "en": "{room}: the exit door has been open for {minutes} min (since {since})",
        },
        {
            "zh-CN": "请提醒老人关门，或查看门为何开着。",
            "en": "Ask the resident to close the door, or check why it is open.",
        },
    ),
    "appliance_left_on": (
        {
            "zh-CN": "{room}的{device}自 {since} 起已开启 {minutes} 分钟（{watts} 瓦）",
            "en": "{device} in the {room} has been on for {minutes} min ({watts} W, since {since})",
        },
        {
            "zh-CN": "请提醒老人关闭；如能远程关闭请关闭。",
            "en": "Remind the resident to switch it off, or switch it off remotely.",
        },
    ),
    "appliance_cut_off": (
        {
            "zh-CN": "{room}的{device}开启 {minutes} 分钟后，中枢已于 {time} 自动断电",
            "en": "{device} in the {room} was switched off by the hub at {time}, after {minutes} min on",
        },
        {
            "zh-CN": "请联系老人：可能忘记了正在做饭。",
            "en": "Check on the resident: they may have forgotten the cooking.",
        },
    ),
    "medication_missed": (
        {
            "zh-CN": "{window} 服药时段药盒没有打开（到 {time}），可能漏服",
            "en": "The pillbox was not opened in the {window} dose window (checked at {time}): a dose may be missed",
        },
        {"zh-CN": "请提醒老人服药，或检查药盒。", "en": "Remind the resident to take the dose, or check the pillbox."},
    ),
    "medication_double": (
        {
            "zh-CN": "{window} 服药时段药盒被打开 {count} 次（最近 {time}）：可能重复服药",
            "en": "The pillbox was opened {count} times in the {window} dose window (last at {time}): "
            "possible double dose",
        },
        {"zh-CN": "请核对药盒剩余药量。", "en": "Check how many pills are left."},
    ),
    "fridge_morning": (
        {"zh-CN": "到 {time} 冰箱今天还没有打开过", "en": "The fridge has not been opened today by {time}"},
        {"zh-CN": "请问问老人是否吃过饭。", "en": "Ask whether the resident has eaten."},
    ),
    "fridge_day": (
        {
            "zh-CN": "冰箱自 {since} 起已 {hours} 小时没有打开",
            "en": "The fridge has not been opened for {hours} h (since {since})",
        },
        {"zh-CN": "请确认老人正常进食、身体安好。", "en": "Check the resident is eating and well."},
    ),
    "heat": (
        {
            "zh-CN": "{room}温度 {value}°C（体感 {feels}°C），自 {since} 起已持续 {minutes} 分钟",
            "en": "The {room} is {value} °C (feels like {feels} °C) for {minutes} min, since {since}",
        },
        {
            "zh-CN": "请打开空调或风扇，多喝水；室外较凉时开窗通风。",
            "en": "Turn on the air conditioner or a fan and drink water; open windows if it is cooler outside.",
        },
    ),
    "cold": (
        {
            "zh-CN": "{room}温度仅 {value}°C，自 {since} 起已持续 {minutes} 分钟",
            "en": "The {room} is only {value} °C for {minutes} min, since {since}",
        },
        {"zh-CN": "请打开取暖设备，注意保暖。", "en": "Turn on the heating and dress warmly."},
    ),
    "smoke_gas_co": (
        {"zh-CN": "{room}在 {time} 发生{alarm}报警", "en": "{alarm} alarm in the {room} at {time}"},
        {
            "zh-CN": "如有火情或燃气泄漏请立即离开并拨打 119；燃气泄漏时不要开关电器。",
            "en": "Leave the home and call 119 if there is fire or gas; with gas, do not touch switches.",
        },
    ),
    "water_leak": (
        {"zh-CN": "{room}在 {time} 检测到漏水", "en": "Water leak in the {room} at {time}"},
        {
            "zh-CN": "如装有阀门已自动关闭。请注意地面湿滑，防止滑倒。",
            "en": "The water valve was closed if one is fitted. Mind the wet floor: slip risk.",
        },
    ),
    "sos": (
        {"zh-CN": "{room}在 {time} 按下了紧急呼叫按钮", "en": "SOS button pressed in the {room} at {time}"},
        {
            "zh-CN": "请立即打电话；无人接听请上门或拨打 120。",
            "en": "Phone the resident at once; if there is no answer, go there or call 120.",
        },
    ),
    "fall": (
        {"zh-CN": "{room}在 {time} 可能有人跌倒", "en": "Possible fall in the {room} at {time}"},
        {
            "zh-CN": "请立即打电话；无人接听请上门或拨打 120。如有受伤不要强行扶起。",
            "en": "Phone at once; if there is no answer, go there or call 120. Do not lift an injured person.",
        },
    ),
    "fall_learning": (
        {
            "zh-CN": "{room}在 {time} 报告跌倒（安装学习期：仅记录）",
            "en": "Fall reported in the {room} at {time} (learning period: logged only)",
        },
        {
            "zh-CN": "学习期内的报告用于检查误报；如属实请告知安装人员。",
            "en": "Reports in the learning period are checked for false alarms; tell the installer if it was real.",
        },
    ),
    "device_offline": (
        {
            "zh-CN": "{room}的{device}自 {time} 起离线：规则无法获取它的数据",
            "en": "{device} in the {room} is offline since {time}: the rules cannot see it",
        },
        {"zh-CN": "请检查设备的电源、电池和网络。", "en": "Check its power or batteries and the network."},
    ),
    "device_stale": (
        {
            "zh-CN": "{room}的{device}自 {since} 起已 {hours} 小时没有上报",
            "en": "{device} in the {room} has not reported for {hours} h (since {since})",
        },
        {"zh-CN": "请检查设备的电源、电池和网络。", "en": "Check its power or batteries and the network."},
    ),
    "battery_low": (
        {"zh-CN": "{room}的{device}电量低（{time}）", "en": "{device} in the {room}: battery low ({time})"},
        {"zh-CN": "请尽快更换电池。", "en": "Replace the battery soon."},
    ),
    "routine_change": (
        {
            "zh-CN": "异常的长时间无活动：自 {since} 起已 {minutes} 分钟，平时这个时段最多 {usual} 分钟",
            "en": "Unusually long silence: {minutes} min since {since}; at this time of the week it is "
            "usually at most {usual} min",
        },
        {"zh-CN": "请打电话确认老人是否安好。", "en": "Phone the resident to check all is well."},
    ),
}

# Words that parameters name: shown in the reader's language.
WORDS: dict[str, dict[Language, str]] = {
    "night": {"zh-CN": "夜间", "en": "night"},
    "day": {"zh-CN": "日间", "en": "daytime"},
    "smoke": {"zh-CN": "烟雾", "en": "Smoke"},
    "gas": {"zh-CN": "燃气", "en": "Gas"},
    "carbon_monoxide": {"zh-CN": "一氧化碳", "en": "Carbon monoxide"},
    "home": {"zh-CN": "家中", "en": "home"},
}

TITLES: dict[str, dict[Language, str]] = {
    "inactivity": {"zh-CN": "长时间无活动", "en": "No activity"},
    "no_exit_use": {"zh-CN": "长时间未出门", "en": "Exit door unused"},
    "morning_check": {"zh-CN": "早晨起床检查", "en": "Morning check"},
    "bathroom_too_long": {"zh-CN": "卫生间停留过久", "en": "Bathroom too long"},
    "night_out_of_bed": {"zh-CN": "夜间离床过久", "en": "Out of bed at night"},
    "night_exit": {"zh-CN": "夜间出门", "en": "Night exit"},
    "door_left_open": {"zh-CN": "门未关", "en": "Door left open"},
    "night_path_light": {"zh-CN": "夜间路径照明", "en": "Night path light"},
    "appliance_left_on": {"zh-CN": "电器未关", "en": "Appliance left on"},
    "medication": {"zh-CN": "服药提醒", "en": "Medication"},
    "fridge_unused": {"zh-CN": "冰箱未使用", "en": "Fridge unused"},
    "room_temperature": {"zh-CN": "室温异常", "en": "Room temperature"},
    "smoke_gas_co": {"zh-CN": "烟雾/燃气/一氧化碳", "en": "Smoke, gas, CO"},
    "water_leak": {"zh-CN": "漏水", "en": "Water leak"},
    "sos": {"zh-CN": "紧急呼叫", "en": "SOS"},
    "fall": {"zh-CN": "跌倒", "en": "Fall"},
    "device_health": {"zh-CN": "设备状态", "en": "Device health"},
    "routine_change": {"zh-CN": "作息变化", "en": "Routine change"},
    "generic": {"zh-CN": "自定义规则", "en": "Custom rule"},
}


@dataclass(frozen=True, slots=True)
class Names:
    """Room and device names by language, from devices.yaml (and the registry for adopted devices)."""

    rooms: Mapping[str, Mapping[Language, str]] = field(default_factory=dict)
    devices: Mapping[str, Mapping[Language, str]] = field(default_factory=dict)

    def room(self, room: str | None, lang: Language) -> str:
        """A room's name in a language (the home itself when no room)."""
        if room is None:
            return WORDS["home"][lang]
        names = self.rooms.get(room, {})
        return names.get(lang) or names.get("en") or room

    def device(self, device_id: str, lang: Language, fallback: str | None = None) -> str:
        """A device's name in a language."""
        names = self.devices.get(device_id, {})
        return names.get(lang) or names.get("en") or fallback or device_id


class _Params(dict[str, Any]):
    """Format parameters: an unknown name shows as itself instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(code: str, params: Mapping[str, Any], names: Names) -> tuple[dict[Language, str], dict[Language, str]]:
    """The message and advice of a catalogue code, in every language."""
    texts, advice = CATALOGUE[code]
    message: dict[Language, str] = {}
    hints: dict[Language, str] = {}
    for lang in LANGUAGES:
        values = _Params(params)
        values["room"] = names.room(params.get("room"), lang)
        if "device" in params:
            values["device"] = names.device(str(params["device"]), lang, params.get("device_name"))
        for key in ("period", "alarm"):
            if key in params:
                values[key] = WORDS.get(str(params[key]), {}).get(lang, params[key])
        message[lang] = texts[lang].format_map(values)
        hints[lang] = advice[lang].format_map(values)
    return message, hints
