"""Camera commands and the read-only views: ``cameras ...``, ``summary``, ``watch``, ``token``.

Every command takes ``--api`` and ``--token``; errors come back as one red line with the API's
reason (exit 1), or exit 2 when the API cannot be reached (:mod:`pipeline.cli.client`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.client import api_base, local_token, print_table, request, request_raw
from pipeline.cli.options import ApiOpt, JsonOpt, TokenOpt

__all__ = ["cameras_app", "show_token", "summary", "watch"]

cameras_app = typer.Typer(no_args_is_help=True, help="Register, list, pause/resume and remove camera streams.")

STATE_COLORS = {"live": "green", "connecting": "yellow", "reconnecting": "yellow", "failed": "red", "stopped": "dim"}


# --------------------------------------------------------------------------- cameras
@cameras_app.command("add")
def cameras_add(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[str, typer.Argument(help="rtsp://, http(s)://, webcam:N, or a file when allowed.")],
    fps: Annotated[float | None, typer.Option(help="Sampling rate (default ingest.default_fps).")] = None,
    name: Annotated[str, typer.Option()] = "",
    paused: Annotated[bool, typer.Option("--paused", help="Register without starting it.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value, repeatable.")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Group name, repeatable.")] = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Register a camera stream; it starts within a second."""
    labels = dict(item.split("=", 1) for item in (label or []) if "=" in item)
    body: dict[str, Any] = {"id": camera_id, "url": url, "name": name, "enabled": not paused, "labels": labels,
                            "groups": list(group or [])}
    if fps is not None:
        body["fps"] = fps
    cam = request("POST", f"{api_base(api)}/cameras", token, json=body)
    groups = f" in {', '.join(cam['groups'])}" if cam.get("groups") else ""
    typer.echo(f"added {cam['id']} ({cam['url']}){groups}")


@cameras_app.command("list")
def cameras_list(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group's cameras.")] = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered cameras (credentials masked)."""
    params = {"group": group} if group else {}
    cams = request("GET", f"{api_base(api)}/cameras", token, params=params)
    if as_json:
        typer.echo(json.dumps(cams, indent=2))
        return
    from rich.table import Table

    table = Table("id", "url", "fps", "enabled", "groups", "name")
    for c in cams:
        table.add_row(c["id"], c["url"], f"{c['fps']:g}", "yes" if c["enabled"] else "paused",
                      ",".join(c.get("groups", [])), c["name"])
    print_table(table)


@cameras_app.command("rm")
def cameras_rm(camera_id: Annotated[str, typer.Argument(metavar="ID")], api: ApiOpt = None,
               token: TokenOpt = None) -> None:
    """Remove a camera; its reader stops, its history stays queryable."""
    request("DELETE", f"{api_base(api)}/cameras/{camera_id}", token)
    typer.echo(f"removed {camera_id}")


@cameras_app.command("pause")
def cameras_pause(camera_id: Annotated[str, typer.Argument(metavar="ID")], api: ApiOpt = None,
                  token: TokenOpt = None) -> None:
    """Stop reading a camera, keep it registered."""
    request("POST", f"{api_base(api)}/cameras/{camera_id}/pause", token)
    typer.echo(f"paused {camera_id}")


@cameras_app.command("resume")
def cameras_resume(camera_id: Annotated[str, typer.Argument(metavar="ID")], api: ApiOpt = None,
                   token: TokenOpt = None) -> None:
    """Start reading a paused camera again."""
    request("POST", f"{api_base(api)}/cameras/{camera_id}/resume", token)
    typer.echo(f"resumed {camera_id}")


@cameras_app.command("export")
def cameras_export(
    camera_id: Annotated[str, typer.Argument(metavar="CAM")],
    start: Annotated[str | None, typer.Option(help="Unix seconds or ISO-8601 (default: end - 1h).")] = None,
    end: Annotated[str | None, typer.Option(help="Unix seconds or ISO-8601 (default: now).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    step: Annotated[str | None, typer.Option(help="Step, e.g. 1s, 1m, 1h (default by range).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download per-step counts and mean probabilities of one camera over [start, end)."""
    params = {k: v for k, v in {"start": start, "end": end, "format": fmt, "step": step}.items() if v}
    response = request_raw("GET", f"{api_base(api)}/cameras/{camera_id}/export", token, params=params)
    if output is None:
        typer.echo(response.text, nl=False)
        return
    output.write_bytes(response.content)
    rows = max(response.text.count("\n") - 1, 0) if fmt == "csv" else len(response.json().get("rows", []))
    typer.echo(f"wrote {rows} rows to {output}", err=True)


# --------------------------------------------------------------------------- summaries
def summary(
    camera_id: Annotated[str, typer.Argument(metavar="CAM")],
    window: Annotated[str, typer.Option(help="Window ending now: 30s, 5m, 1h, 24h or seconds.")] = "60",
    group: Annotated[bool, typer.Option("--group", help="CAM names a group: merged summary of its cameras.")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Emotion distribution of one camera (or group) over the last WINDOW."""
    path = f"/groups/{camera_id}/summary" if group else f"/cameras/{camera_id}/summary"
    s = request("GET", f"{api_base(api)}{path}", token, params={"window": window})
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    from rich.table import Table

    table = Table("emotion", "faces", "share", "mean prob", title=(
        f"{camera_id}: {s['faces']} faces, {s['distinct_tracks']} people, dominant {s['dominant'] or '-'} "
        f"(last {s['window_s']:g}s, model {s['model'] or '-'})"))
    for label, count in s["counts"].items():
        table.add_row(label, str(count), f"{s['shares'][label]:.1%}", f"{s['mean_probs'][label]:.3f}")
    print_table(table)


def _overview_table(data: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table("camera", "state", "fps in", "fps proc.", "faces", "dominant", "top shares",
                  title=f"emotion-pipeline: last {data['window_s']:g}s, {time.strftime('%H:%M:%S')}")
    for row in data["cameras"]:
        state = row["state"] if row["enabled"] else "paused"
        color = STATE_COLORS.get(state, "white")
        top = sorted(row["shares"].items(), key=lambda kv: -kv[1])[:3]
        shares = "  ".join(f"{label} {share:.0%}" for label, share in top if share > 0) or "-"
        table.add_row(row["id"], f"[{color}]{state}[/]", f"{row['fps_in']:.1f}", f"{row['fps_processed']:.1f}",
                      str(row["faces"]), row["dominant"] or "-", shares)
    if not data["cameras"]:
        table.caption = "no cameras registered (`emotionpipe cameras add ID URL`)"
    elif (cap := data.get("capacity")) and cap["over_capacity"]:
        table.caption = (
            f"[red]OVER CAPACITY[/]: {cap['dropped_fps']:.1f} frames/s dropped of {cap['demand_fps']:.1f} asked; "
            f"processing {cap['processed_fps']:.1f} frames/s sustains ~{cap['sustainable_cameras']} of "
            f"{cap['cameras']} cameras at their fps (add CPUs or replicas, lower fps, or remove cameras)"
        )
    return table


def watch(
    window: Annotated[str, typer.Option(help="Window of the emotion columns: 30s, 1m, 5m, ...")] = "1m",
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one table and exit.")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Live table of all cameras: state, fps, faces, dominant emotion, top shares (Ctrl-C ends)."""
    url = f"{api_base(api)}/overview"
    if once:
        print_table(_overview_table(request("GET", url, token, params={"window": window})))
        return
    from rich.live import Live

    with Live(_overview_table(request("GET", url, token, params={"window": window})), auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(_overview_table(request("GET", url, token, params={"window": window})), refresh=True)
        except KeyboardInterrupt:
            pass


def show_token() -> None:
    """Print the local stack's API token (for curl, dashboards, EP_API_TOKEN)."""
    secret = local_token()
    if not secret:
        typer.secho("no API token found: start the stack with `emotionpipe up` or set EP_API__TOKENS",
                    err=True, fg="red")
        raise typer.Exit(1)
    typer.echo(secret)
