"""Alert rule commands: ``alerts list|add|rm|events`` (share of emotions over a window -> webhook)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from pipeline.cli.client import api_base, print_table, request
from pipeline.cli.options import ApiOpt, JsonOpt, TokenOpt

__all__ = ["alerts_app"]

alerts_app = typer.Typer(no_args_is_help=True, help="Alert rules: share of emotions over a window -> webhook.")


@alerts_app.command("list")
def alerts_list(api: ApiOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List alert rules with their last evaluation (webhook credentials masked)."""
    rules = request("GET", f"{api_base(api)}/alerts", token)
    if as_json:
        typer.echo(json.dumps(rules, indent=2))
        return
    from rich.table import Table

    table = Table("id", "target", "condition", "window", "min faces", "webhook", "enabled", "last value")
    for r in rules:
        target = f"camera {r['camera_id']}" if r["camera_id"] else f"group {r['group']}"
        last = r["state"]["last_value"]
        table.add_row(r["id"], target, f"{'+'.join(r['labels'])} {r['op']} {r['threshold']:g}", f"{r['window']:g}s",
                      str(r["min_faces"]), r["webhook_url"] or "-", "yes" if r["enabled"] else "no",
                      "-" if last is None else f"{last:.3f}{' (firing)' if r['state']['active'] else ''}")
    print_table(table)


@alerts_app.command("add")
def alerts_add(
    rule_id: Annotated[str, typer.Argument(metavar="ID")],
    labels: Annotated[str, typer.Option(help="Comma-separated labels whose shares add up, e.g. angry,fear.")],
    threshold: Annotated[float, typer.Option(help="Share 0..1.")],
    camera: Annotated[str | None, typer.Option("--camera", "-c", help="Camera watched.")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Camera group watched.")] = None,
    op: Annotated[str, typer.Option(help="> >= < <=")] = ">",
    window: Annotated[str, typer.Option(help="Window: 30s, 5m, 1h, ...")] = "5m",
    min_faces: Annotated[int, typer.Option(help="Faces needed in the window before it can fire.")] = 10,
    webhook: Annotated[str | None, typer.Option(help="http(s) URL receiving a JSON POST per firing.")] = None,
    cooldown: Annotated[str, typer.Option(help="Minimum time between firings.")] = "10m",
    description: Annotated[str, typer.Option()] = "",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create an alert rule, e.g. `alerts add lobby-tense -c lobby --labels angry,fear --threshold 0.3`."""
    body: dict[str, Any] = {
        "id": rule_id, "labels": [x.strip() for x in labels.split(",") if x.strip()], "threshold": threshold,
        "op": op, "window": window, "min_faces": min_faces, "cooldown": cooldown, "description": description,
        "enabled": not disabled, "webhook_url": webhook, "camera_id": camera, "group": group,
    }
    rule = request("POST", f"{api_base(api)}/alerts", token, json=body)
    typer.echo(f"added alert {rule['id']} ({'+'.join(rule['labels'])} {rule['op']} {rule['threshold']:g} "
               f"over {rule['window']:g}s)")


@alerts_app.command("rm")
def alerts_rm(rule_id: Annotated[str, typer.Argument(metavar="ID")], api: ApiOpt = None,
              token: TokenOpt = None) -> None:
    """Delete an alert rule and its events."""
    request("DELETE", f"{api_base(api)}/alerts/{rule_id}", token)
    typer.echo(f"removed alert {rule_id}")


@alerts_app.command("events")
def alerts_events(rule_id: Annotated[str, typer.Argument(metavar="ID")], api: ApiOpt = None,
                  token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Recent firings of a rule with the webhook outcome."""
    events = request("GET", f"{api_base(api)}/alerts/{rule_id}/events", token)
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    from rich.table import Table

    table = Table("time", "value", "faces", "status", "attempts", "error")
    for e in events:
        table.add_row(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts"])), f"{e['value']:.3f}",
                      str(e["faces"]), e["status"], str(e["attempts"]), e["error"] or "-")
    print_table(table)
