"""How `bramley connect` prints: a card's outputs as a Field/Value table under the card's names, device lists
as tables, streams line by line with a progress bar on stderr, or JSON for scripts."""
from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bramley.connector.models import CardModel, Device
from bramley.connector.paging import Stream

# Piped into a file or a pager, a table keeps its rows on one line each (Rich would assume 80 columns).
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 220)
err = Console(stderr=True, soft_wrap=True)  # an error stays on one line, for grep and logs


def print_json(data: Any) -> None:
    print(json.dumps(data, default=str))


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def row(*values: Any) -> list[Text]:
    """Table cells as plain text: a device named "[Lab] Mac" must not be read as Rich markup."""
    return [Text(cell(v)) for v in values]


def show(result: CardModel | dict | None, as_json: bool, title: str | None = None) -> None:
    """One card's outputs: a Field/Value table under the card's names, or JSON."""
    if as_json:
        print_json(result.plain() if isinstance(result, CardModel) else result)
        return
    if result is None:
        out.print("no match")
        return
    rows = result.card() if isinstance(result, CardModel) else result
    table = Table("Field", "Value", title=title, show_lines=False)
    for key, value in rows.items():
        if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            for sub, sub_value in value.items():
                table.add_row(*row(f"{key} › {sub}", sub_value))
        else:
            table.add_row(*row(key, value))
    out.print(table)


DEVICE_COLUMNS = [("Device ID", 36), ("Device Name", 24), ("Platform", 8), ("OS Version", 10),
                  ("Serial Number", 14), ("User", 28), ("Blueprint Name", 18), ("Last Check-in", 20)]


def device_row(device: Device) -> list[str]:
    last = device.last_check_in
    return [device.device_id, device.device_name or "", device.platform or "", device.os_version or "",
            device.serial_number or "", (device.user.email or device.user.name or "") if device.user else "",
            device.blueprint_name or "", last.strftime("%Y-%m-%d %H:%M") if hasattr(last, "strftime") else cell(last)]


def show_devices(devices: list[Device], as_json: bool) -> None:
    if as_json:
        print_json([d.plain() for d in devices])
        return
    table = Table(caption=f"{len(devices)} device(s)")
    for name, _ in DEVICE_COLUMNS:
        table.add_column(name, no_wrap=name == "Device ID")
    for device in devices:
        table.add_row(*row(*device_row(device)))
    out.print(table)


def show_records(records: list[dict], as_json: bool, columns: list[str], caption: str) -> None:
    if as_json:
        print_json(records)
        return
    table = Table(*columns, caption=caption)
    for record in records:
        table.add_row(*row(*[dig(record, c) for c in columns]))
    out.print(table)


def dig(record: dict, dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def run_stream(stream: Stream, as_json: bool, progress: bool | None, noun: str, render_row=None,
               header: list[tuple[str, int]] | None = None) -> int:
    """Drain a stream: one JSON line per record (--json) or one table line each, with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    show_progress = err.is_terminal if progress is None else progress
    bar = Progress(SpinnerColumn(), TextColumn(f"streaming {noun}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err, transient=err.is_terminal,
                   disable=not show_progress)
    write = sys.stdout.write
    if not as_json and header:
        write(_fixed([name for name, _ in header], header) + "\n")
    with bar:
        task = bar.add_task(noun, total=None, rate="")
        for record in stream:
            if as_json:
                write(json.dumps(record.plain() if hasattr(record, "plain") else record, default=str) + "\n")
            else:
                write(_fixed(render_row(record), header) + "\n")
            if stream.record_count % 300 == 0:
                elapsed = bar.tasks[0].elapsed or 0
                bar.update(task, completed=stream.record_count, total=stream.total,
                           rate=f"{stream.record_count / elapsed:,.0f}/s" if elapsed else "")
        bar.update(task, completed=stream.record_count, total=stream.total or stream.record_count)
    sys.stdout.flush()
    if not as_json:
        err.print(f"{stream.record_count} {noun}", highlight=False)
    return stream.record_count


def _fixed(cells: list[str], header) -> str:
    return "  ".join(str(c)[:w].ljust(w) for c, (_, w) in zip(cells, header)).rstrip()
