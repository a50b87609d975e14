"""A loopback RTSP server for the capture tests (GStreamer's gst-rtsp-server through Debian's python3-gi):
serves the JPEG frames of a folder in a loop as MJPEG over RTP at 10 frames/s.

    /usr/bin/python3 tests/data/rtsp_server.py PORT FRAMES_DIR
prints "ready" once listening on rtsp://127.0.0.1:PORT/cam; runs until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, frames = sys.argv[1], sys.argv[2]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( multifilesrc location={frames}/%03d.jpg loop=true caps=image/jpeg,framerate=10/1 "
    "! jpegparse ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
