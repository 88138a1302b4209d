"""MP4 file sink (PyAV: H.264 + AAC) and a null sink."""

from plugins.sink_file.sink import FileSink, FileSinkConfig, NullSink, NullSinkConfig

__all__ = ["FileSink", "FileSinkConfig", "NullSink", "NullSinkConfig"]
