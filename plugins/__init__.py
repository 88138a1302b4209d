"""Engine, transport and channel plugins (one folder each, Config beside the code)."""
