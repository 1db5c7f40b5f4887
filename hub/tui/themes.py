"""High-contrast palettes (dark, light, no-colour) and the WCAG contrast ratio they are checked with."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Palette:
    """Every colour the TUI uses; text colours are checked against `background` (>= 7:1)."""

    name: str
    dark: bool
    background: str
    foreground: str
    muted: str  # secondary text, still >= 7:1
    critical: str
    warning: str
    info: str
    ok: str
    cursor_bg: str  # the selected line
    cursor_fg: str
    banner_bg: str  # the critical banner on every view
    banner_fg: str

    def text_colours(self) -> dict[str, str]:
        """Colours used for text on the background."""
        d = asdict(self)
        return {k: d[k] for k in ("foreground", "muted", "critical", "warning", "info", "ok")}

    def pairs(self) -> dict[str, tuple[str, str]]:
        """Every (text, background) pair the TUI draws, by name."""
        pairs = {k: (v, self.background) for k, v in self.text_colours().items()}
        pairs["cursor"] = (self.cursor_fg, self.cursor_bg)
        pairs["banner"] = (self.banner_fg, self.banner_bg)
        return pairs


PALETTES: dict[str, Palette] = {
    "dark": Palette(
        name="eldercare-dark",
        dark=True,
        background="#000000",
        foreground="#ffffff",
        muted="#c8c8c8",
        critical="#ff8a8a",
        warning="#ffd75f",
        info="#9ad0ff",
        ok="#a8f0a8",
        cursor_bg="#ffffff",
        cursor_fg="#000000",
        banner_bg="#ffd0d0",
        banner_fg="#000000",
    ),
    "light": Palette(
        name="eldercare-light",
        dark=False,
        background="#ffffff",
        foreground="#000000",
        muted="#3a3a3a",
        critical="#9b0000",
        warning="#5c4300",
        info="#003a80",
        ok="#0a4f0a",
        cursor_bg="#000000",
        cursor_fg="#ffffff",
        banner_bg="#9b0000",
        banner_fg="#ffffff",
    ),
    # NO_COLOR: black and white only; states differ by words, symbols and bold/reverse.
    "mono": Palette(
        name="eldercare-mono",
        dark=True,
        background="#000000",
        foreground="#ffffff",
        muted="#ffffff",
        critical="#ffffff",
        warning="#ffffff",
        info="#ffffff",
        ok="#ffffff",
        cursor_bg="#ffffff",
        cursor_fg="#000000",
        banner_bg="#ffffff",
        banner_fg="#000000",
    ),
}


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of `#rrggbb`."""
    h = colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours, from 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
