#!/usr/bin/python3
"""A real RTSP server for the benchmark and the tests: Debian's GStreamer RTSP server through python3-gi.

A script, not a module of the package's Python: it runs under Debian's ``/usr/bin/python3``
(the venv has no PyGObject), started as a child process by
:class:`pipeline.bench.camera_sim.RtspServer`, which finds it next to itself so it works from
an installed wheel as well as from a checkout. Never import it::

    /usr/bin/python3 pipeline/bench/rtsp_server.py --port 8554 \
        hap=/work/shared/media/video/cremad/1001_DFA_HAP_XX.mp4 noface=/path/no_face.mp4

Each ``name=path`` pair becomes the mount ``rtsp://127.0.0.1:PORT/name``. Every file is decoded and
re-encoded to H.264 640x480 (letterboxed, no B-frames, a key frame every second) so that readers see
one uniform, low-latency stream whatever the source codec (the .mov files are HEVC). Files loop
forever: on EOS the server drops the event and does a flushing seek back to 0, because
GStreamer's ``multifilesrc loop`` does not reset the demuxer. Media are shared between clients so
several readers of one mount cost one encoder.

Prints ``READY <port>`` on stdout once listening; exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

WIDTH, HEIGHT = 640, 480


def launch_line(path: str) -> str:
    """Build the gst-launch description of one looping mount."""
    # qtdemux handles mp4 and mov (all test media); its audio pad stays unlinked on purpose.
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{location}" ! qtdemux name=demux demux.video_0 ! queue ! decodebin '
        f"! videoconvert ! videoscale add-borders=true "
        f"! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},pixel-aspect-ratio=1/1 "
        f"! identity name=loop "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bframes=0 threads=1 "
        f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def passthrough_line(path: str) -> str:
    """A mount that sends an H.264 file's packets as they are (no decode, no encode).

    For benchmarks: re-encoding costs the server ~10 % of a core per mount, CPU that belongs to
    the system under test (real cameras encode on their own hardware).
    """
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{location}" ! qtdemux name=demux demux.video_0 ! queue '
        f"! h264parse config-interval=-1 ! identity name=loop ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """Shared media factory whose media rewind to the start instead of ending."""

    def __init__(self, path: str, passthrough: bool = False) -> None:
        super().__init__()
        self.set_launch(passthrough_line(path) if passthrough else launch_line(path))
        self.set_shared(True)
        # A stopped client must not tear the shared media down under another one.
        self.set_eos_shutdown(False)
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        bin_ = media.get_element()
        demux = bin_.get_by_name("demux")
        loop = bin_.get_by_name("loop")
        sink_pad = loop.get_static_pad("sink")
        sink_pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self._on_event, demux)

    @staticmethod
    def _on_event(_pad: Gst.Pad, info: Gst.PadProbeInfo, demux: Gst.Element) -> Gst.PadProbeReturn:
        event = info.get_event()
        if event is None or event.type != Gst.EventType.EOS:
            return Gst.PadProbeReturn.OK

        def rewind() -> bool:
            # Seeking from the streaming thread would deadlock; the main loop does it.
            demux.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
            return False

        GLib.idle_add(rewind)
        return Gst.PadProbeReturn.DROP


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--passthrough", action="store_true",
                        help="serve H.264 files as they are (no re-encode; the files must be H.264 without B-frames)")
    parser.add_argument("--auth", metavar="USER:PASSWORD",
                        help="require HTTP Basic credentials for every mount (auth-failure tests)")
    parser.add_argument("mounts", nargs="+", metavar="name=path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    role = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        role = "viewer"
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    for spec in args.mounts:
        name, sep, path = spec.partition("=")
        if not sep or not name or not os.path.isfile(path):
            print(f"bad mount {spec!r}: expected name=existing_file", file=sys.stderr)
            return 2
        factory = LoopingFactory(os.path.abspath(path), args.passthrough)
        if role is not None:
            factory.add_role_from_structure(Gst.Structure.from_string(
                f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
        mounts.add_factory("/" + name.strip("/"), factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 3
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
